#!/usr/bin/env bash
# Run every fuzz target for $FUZZ_SECONDS and record what happened in
# $FUZZ_RESULTS (default fuzz/results.json): per target the seconds run,
# libFuzzer's executed units, the corpus size and the crashes found.
#
#   FUZZ_SECONDS=600   seconds per target (libFuzzer -max_total_time)
#   FUZZ_JOBS=2        targets fuzzed at once (each is one process)
#   FUZZ_TARGETS="…"   a subset (default: all, see TARGETS below)
#   FUZZ_CMIN=1        minimise each target's corpus afterwards (cargo fuzz cmin)
#   FUZZ_KEEP=1        add new inputs to fuzz/corpus/<target> (0: to a scratch
#                      directory under fuzz/logs, leaving the committed corpus alone)
#   FUZZ_RESULTS=…     where to write the JSON
#   FUZZ_TARGET_DIR=…  cargo target directory (default fuzz/target); the
#                      sanitizer builds go to separate subdirectories
#   FUZZ_NICE=10       nice level of builds and fuzzers
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain the
# nightly-only flags cargo-fuzz passes are allowed with RUSTC_BOOTSTRAP=1.
#
# Sanitizers: the core targets run under AddressSanitizer. Targets that link
# the AWS SDK or DataFusion (source_*, dynamodb_item, consumer_sqs_event,
# producer_event) run with `--sanitizer none`: building those stacks under
# ASan took too long on a 2-core machine, and the code under test is safe
# Rust (ASan mostly adds value for unsafe and C code). They keep libFuzzer's
# coverage guidance, debug assertions and overflow checks.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

SECONDS_PER_TARGET="${FUZZ_SECONDS:-600}"
JOBS="${FUZZ_JOBS:-2}"
CMIN="${FUZZ_CMIN:-1}"
KEEP="${FUZZ_KEEP:-1}"
RESULTS="${FUZZ_RESULTS:-$HERE/results.json}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$HERE/target}"
NICE="${FUZZ_NICE:-10}"
LOGS="$HERE/logs"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export RUSTC_BOOTSTRAP=1

# target:sanitizer:features
TARGETS=(
  "message_decode:address:"
  "message_roundtrip:address:"
  "record_parse:address:"
  "source_jsonl:none:local,aws"
  "source_csv:none:local,aws"
  "dynamodb_item:none:local,aws"
  "consumer_sqs_event:none:local,aws"
  "producer_event:none:local,aws"
)

selected=()
for spec in "${TARGETS[@]}"; do
  name="${spec%%:*}"
  if [[ -z "${FUZZ_TARGETS:-}" ]] || [[ " ${FUZZ_TARGETS} " == *" ${name} "* ]]; then
    selected+=("$spec")
  fi
done
if [[ ${#selected[@]} -eq 0 ]]; then
  echo "no fuzz targets match FUZZ_TARGETS=${FUZZ_TARGETS:-}" >&2
  exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi

mkdir -p "$LOGS"
for spec in "${selected[@]}"; do rm -f "$LOGS/${spec%%:*}.result.json"; done
[[ -d corpus ]] && [[ -n "$(ls -A corpus 2>/dev/null)" ]] || python3 "$HERE/seed_corpus.py"

fuzz_opts() { # sanitizer features
  local opts=(-O --sanitizer "$1" --target-dir "$TARGET_DIR/$1")
  if [[ "$1" == none ]]; then opts+=(--codegen-units 16); fi
  if [[ -n "$2" ]]; then opts+=(--features "$2"); fi
  echo "${opts[@]}"
}

# Build first, one build per configuration, so the timed runs only fuzz.
declare -A built=()
for spec in "${selected[@]}"; do
  IFS=: read -r name san feat <<<"$spec"
  key="$san:$feat"
  [[ -n "${built[$key]:-}" ]] && continue
  echo "== building ($key)"
  # shellcheck disable=SC2046
  nice -n "$NICE" cargo fuzz build $(fuzz_opts "$san" "$feat")
  built[$key]=1
done

run_one() { # spec
  local name san feat
  IFS=: read -r name san feat <<<"$1"
  local log="$LOGS/$name.log" art="$HERE/artifacts/$name"
  mkdir -p "corpus/$name" "$art"
  local before after start end status=0
  before=$(find "$art" -type f | wc -l)
  # libFuzzer writes new inputs into the first directory.
  local dirs=("corpus/$name")
  if [[ "$KEEP" != 1 ]]; then
    rm -rf "$LOGS/scratch-$name" && mkdir -p "$LOGS/scratch-$name"
    dirs=("$LOGS/scratch-$name" "corpus/$name")
  fi
  start=$(date +%s)
  echo "== fuzzing $name for ${SECONDS_PER_TARGET}s (sanitizer $san)"
  # The binary built above, run directly: `cargo fuzz run` would rebuild
  # (inside the timed run) whenever the workspace changed since the build.
  nice -n "$NICE" "$TARGET_DIR/$san/$TRIPLE/release/$name" -artifact_prefix="$art/" \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 -timeout=30 -rss_limit_mb=2048 \
    "${dirs[@]}" >"$log" 2>&1 || status=$?
  end=$(date +%s)
  after=$(find "$art" -type f | wc -l)
  if [[ "$CMIN" == 1 && "$KEEP" == 1 && $status -eq 0 ]]; then
    # shellcheck disable=SC2046
    nice -n "$NICE" cargo fuzz cmin $(fuzz_opts "$san" "$feat") "$name" "corpus/$name" \
      >"$LOGS/$name.cmin.log" 2>&1 || echo "cmin of $name failed, see $LOGS/$name.cmin.log" >&2
  fi
  local execs secs
  secs=$(grep -aoE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $5}')
  execs=$(grep -ao 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [[ -z "$execs" ]]; then # no final stats (a crash): the last status line
    execs=$(grep -aoE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  fi
  printf '{"target":"%s","sanitizer":"%s","seconds":%d,"executions":%s,"corpus_files":%d,"corpus_bytes":%d,"crashes":%d,"exit_status":%d}\n' \
    "$name" "$san" "${secs:-$((end - start))}" "${execs:-0}" \
    "$(find "corpus/$name" -type f | wc -l)" \
    "$(find "corpus/$name" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')" \
    "$((after - before))" "$status" >"$LOGS/$name.result.json"
  echo "== $name: exit $status, $(cat "$LOGS/$name.result.json")"
}

running=0
for spec in "${selected[@]}"; do
  if (( running >= JOBS )); then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$spec" &
  running=$((running + 1))
done
wait || true

python3 - "$RESULTS" "$SECONDS_PER_TARGET" "$LOGS" "${selected[@]}" <<'PY'
import json, os, platform, sys, datetime
out, secs, logs, specs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
# A run of some targets updates their rows and keeps the others.
try:
    with open(out) as f:
        rows = {r["target"]: r for r in json.load(f).get("targets", [])}
except (OSError, ValueError):
    rows = {}
for spec in specs:
    name = spec.split(":")[0]
    with open(os.path.join(logs, name + ".result.json")) as f:
        row = json.load(f)
    row["finished_at"] = now
    rows[name] = row
order = [s.split(":")[0] for s in specs]
doc = {
    "generated_at": now,
    "requested_seconds_per_target": secs,
    "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    "targets": sorted(rows.values(), key=lambda r: r["target"]),
}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
print(f"wrote {out}")
PY

failed=0
for spec in "${selected[@]}"; do
  r="$LOGS/${spec%%:*}.result.json"
  if grep -qE '"crashes":[1-9]|"exit_status":[1-9]' "$r"; then failed=1; fi
done
if (( failed )); then
  echo "fuzzing found crashes: see fuzz/artifacts/ and fuzz/logs/" >&2
  exit 1
fi
