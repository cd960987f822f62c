"""An independent check of a lake `etl run` wrote with VADER.

Reads every Parquet file of the lake with pyarrow (not parquet-rs), the input
JSON lines with Python's json module, and scores each text with the reference
vaderSentiment 3.3.2; shares no code with the writer. Checks that:

* every input version (id, text, created_at, updated_at) is in the lake once,
  and nothing else is;
* each row sits in the file of its partition (`dt=` of created_at, UTC);
* its scores are vaderSentiment's polarity_scores (pos, neg, neu, compound),
  exactly, with mixed 0, and its label follows the contract's thresholds;
* `engine` is vader and `processed_at` is the instant given (a pinned clock);
* no file has a page index (column or offset index), which Java readers have
  misread (apache/arrow-rs#10316), and every column chunk has row-group
  statistics.

Prints a JSON summary; exits 1 naming the first problems otherwise.

    python tools/check_lake.py INPUT.jsonl LAKE_DIR [--processed-at RFC3339]
"""

import argparse
import datetime as dt
import json
import pathlib
import sys

import pyarrow.parquet as pq
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


def instant(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def label(p):
    if p["pos"] > 0.3 and p["neg"] > 0.3:
        return "MIXED"
    if p["compound"] >= 0.05:
        return "POSITIVE"
    if p["compound"] <= -0.05:
        return "NEGATIVE"
    return "NEUTRAL"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("lake")
    ap.add_argument("--processed-at")
    a = ap.parse_args()

    want = {}
    with open(a.input, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            created = instant(r["created_at"])
            updated = instant(r.get("updated_at") or r["created_at"])
            want[(r["id"], r["text"], created, updated)] = 0

    vader = SentimentIntensityAnalyzer()
    problems = []
    rows = 0
    files = sorted((pathlib.Path(a.lake) / "sentiment").glob("dt=*/*.parquet"))
    for path in files:
        part = path.parent.name[len("dt="):]
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                if col.has_column_index or col.has_offset_index:
                    problems.append(f"{path.name}: row group {g} column {col.path_in_schema} has a page index")
                if not col.is_stats_set:
                    problems.append(f"{path.name}: row group {g} column {col.path_in_schema} has no statistics")
        for row in pq.read_table(path).to_pylist():
            rows += 1
            key = (row["id"], row["text"], row["created_at"], row["updated_at"])
            if key not in want:
                problems.append(f"{path.name}: row {row['id']!r} is no input version")
                continue
            want[key] += 1
            where = f"{path.name}: {row['id']!r}"
            if row["created_at"].date().isoformat() != part:
                problems.append(f"{where}: created {row['created_at']} in dt={part}")
            p = vader.polarity_scores(row["text"])
            got = (row["score_positive"], row["score_negative"], row["score_neutral"], row["score_compound"])
            if got != (p["pos"], p["neg"], p["neu"], p["compound"]):
                problems.append(f"{where}: scores {got} != vaderSentiment {p}")
            if row["score_mixed"] != 0.0:
                problems.append(f"{where}: score_mixed {row['score_mixed']}")
            if row["sentiment"] != label(p):
                problems.append(f"{where}: label {row['sentiment']} != {label(p)}")
            if row["engine"] != "vader":
                problems.append(f"{where}: engine {row['engine']}")
            if a.processed_at and row["processed_at"] != instant(a.processed_at):
                problems.append(f"{where}: processed_at {row['processed_at']}")
    for key, n in want.items():
        if n != 1:
            problems.append(f"input version {key[0]!r} at {key[3]} is in the lake {n} times")
    summary = {"files": len(files), "rows": rows, "input_versions": len(want), "problems": len(problems)}
    print(json.dumps(summary))
    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
