#!/usr/bin/env python3
"""The sentiment pipeline written the way a typical Python user writes it.

This is the baseline `make bench` compares `etl run` against: the original
course-project style. Read the JSON lines with pandas, score every text with
vaderSentiment's SentimentIntensityAnalyzer().polarity_scores, label with the
contract's rule, build the same columns as the Rust pipeline and write a
Hive-partitioned Parquet dataset (dt = UTC date of created_at, Snappy) with
pyarrow.parquet.write_to_dataset. One process, one core, no tricks.

    python reference.py --input posts.jsonl --lake lake_py

Prints one JSON line with the row count and the time of each stage on stdout.
"""

import argparse
import json
import os
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

TS = pa.timestamp("us", tz="UTC")

# The output table's schema (the `dt` partition column lives in the path).
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("created_at", TS, nullable=False),
        pa.field("updated_at", TS, nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("sentiment", pa.string(), nullable=False),
        pa.field("score_positive", pa.float64(), nullable=False),
        pa.field("score_negative", pa.float64(), nullable=False),
        pa.field("score_neutral", pa.float64(), nullable=False),
        pa.field("score_mixed", pa.float64(), nullable=False),
        pa.field("score_compound", pa.float64()),
        pa.field("engine", pa.string(), nullable=False),
        pa.field("processed_at", TS, nullable=False),
        pa.field("dt", pa.string(), nullable=False),
    ]
)


def label(scores):
    """compound >= 0.05 POSITIVE, <= -0.05 NEGATIVE, else NEUTRAL; MIXED when pos and neg > 0.3."""
    if scores["pos"] > 0.3 and scores["neg"] > 0.3:
        return "MIXED"
    if scores["compound"] >= 0.05:
        return "POSITIVE"
    if scores["compound"] <= -0.05:
        return "NEGATIVE"
    return "NEUTRAL"


def read_posts(path):
    df = pd.read_json(path, lines=True, dtype=False)
    df["id"] = df["id"].astype(str)
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True, format="ISO8601")
    if "updated_at" in df.columns:
        df["updated_at"] = pd.to_datetime(df["updated_at"], utc=True, format="ISO8601")
        df["updated_at"] = df["updated_at"].fillna(df["created_at"])
    else:
        df["updated_at"] = df["created_at"]
    return df[["id", "text", "created_at", "updated_at"]]


def score(df, analyzer):
    scores = df["text"].apply(analyzer.polarity_scores)
    out = df.copy()
    out["language"] = "en"
    out["sentiment"] = scores.apply(label)
    out["score_positive"] = scores.apply(lambda s: s["pos"])
    out["score_negative"] = scores.apply(lambda s: s["neg"])
    out["score_neutral"] = scores.apply(lambda s: s["neu"])
    out["score_mixed"] = 0.0
    out["score_compound"] = scores.apply(lambda s: s["compound"])
    out["engine"] = "vader"
    out["processed_at"] = pd.Timestamp.now(tz="UTC").floor("us")
    out["dt"] = out["created_at"].dt.strftime("%Y-%m-%d")
    return out


def to_table(df):
    return pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False)


def write_lake(table, lake):
    pq.write_to_dataset(
        table,
        root_path=f"{lake}/sentiment",
        partition_cols=["dt"],
        compression="snappy",
        existing_data_behavior="overwrite_or_ignore",
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    ap.add_argument("--lake", required=True)
    a = ap.parse_args(argv)

    t0 = time.perf_counter()
    df = read_posts(a.input)
    t1 = time.perf_counter()
    analyzer = SentimentIntensityAnalyzer()
    scored = score(df, analyzer)
    t2 = time.perf_counter()
    table = to_table(scored)
    t3 = time.perf_counter()
    write_lake(table, a.lake)
    t4 = time.perf_counter()
    json.dump(
        {
            "rows": table.num_rows,
            "read_s": round(t1 - t0, 4),
            "score_s": round(t2 - t1, 4),
            "arrow_s": round(t3 - t2, 4),
            "parquet_s": round(t4 - t3, 4),
            "total_s": round(t4 - t0, 4),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
    # pyarrow's dataset writer can abort at interpreter shutdown, after all the
    # work is done ("terminate called without an active exception", SIGABRT;
    # apache/arrow#36389, #36980). Exit without the interpreter's teardown.
    sys.stdout.flush()
    os._exit(0)
