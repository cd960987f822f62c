#!/usr/bin/env python3
"""The Python hot path alone: score + Arrow + Parquet, no input I/O.

The posts are read into memory first (not timed); then the timed part is what
the reference pipeline does per record: vaderSentiment polarity_scores and the
label, the pandas → Arrow table, and Snappy Parquet encoded per `dt` partition
into in-memory buffers (no disk). The Rust counterpart is bench/hotpath.

    python hotpath.py --input posts.jsonl

Prints one JSON line: rows, seconds per stage, CPU seconds, records/s.
"""

import argparse
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402


def encode_partitions(table):
    """Snappy Parquet per dt value into memory; returns (files, bytes)."""
    files = total = 0
    for dt in pc.unique(table["dt"]).to_pylist():
        part = table.filter(pc.equal(table["dt"], dt)).drop_columns(["dt"])
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink, compression="snappy")
        total += sink.getvalue().size
        files += 1
    return files, total


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True)
    a = ap.parse_args(argv)

    df = reference.read_posts(a.input)
    analyzer = SentimentIntensityAnalyzer()

    c0, t0 = time.process_time(), time.perf_counter()
    scored = reference.score(df, analyzer)
    t1 = time.perf_counter()
    table = reference.to_table(scored)
    t2 = time.perf_counter()
    files, nbytes = encode_partitions(table)
    t3 = time.perf_counter()
    cpu = time.process_time() - c0
    json.dump(
        {
            "rows": table.num_rows,
            "score_s": round(t1 - t0, 4),
            "arrow_s": round(t2 - t1, 4),
            "parquet_s": round(t3 - t2, 4),
            "total_s": round(t3 - t0, 4),
            "cpu_s": round(cpu, 4),
            "files": files,
            "parquet_bytes": nbytes,
            "records_per_s": round(table.num_rows / (t3 - t0), 1),
            "records_per_cpu_s": round(table.num_rows / cpu, 1),
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # see reference.py: pyarrow may abort in interpreter teardown
