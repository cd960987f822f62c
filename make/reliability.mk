# Reliability scenarios, included by the top-level Makefile.
#
#   make reliability     run the fault-injection scenarios (tests/e2e/faults/: the AWS
#                        path on moto behind a loopback fault proxy, and the local
#                        backends) with RELIABILITY_REPORT set, then summarise the JSON
#                        lines they append into a table:
#                          $(RELIABILITY_DIR)/report.jsonl   one line per scenario
#                          $(RELIABILITY_DIR)/summary.md     the table (also printed)
#   make reliability RELIABILITY_FILTER=aws_comprehend   one scenario (cargo test filter)
#
# Each scenario ends with an exact accounting (records in the source = records once in
# the lake + records dead-lettered with a reason) and fails if it does not hold.

RELIABILITY_DIR    ?= target/reliability
RELIABILITY_FILTER ?= faults::
RELIABILITY_NICE   ?= nice -n 5

.PHONY: reliability

reliability: venv
	@mkdir -p $(RELIABILITY_DIR)
	@rm -f $(RELIABILITY_DIR)/report.jsonl
	RELIABILITY_REPORT=$(abspath $(RELIABILITY_DIR))/report.jsonl \
		$(RELIABILITY_NICE) $(CARGO) test -p etl-tests --test e2e -- $(RELIABILITY_FILTER); \
		status=$$?; \
		$(PYTHON) tools/reliability_report.py $(RELIABILITY_DIR)/report.jsonl \
			--markdown $(RELIABILITY_DIR)/summary.md; \
		exit $$status
