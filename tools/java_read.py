"""A Java reader of the lake: Apache Spark's Parquet reader (parquet-mr, from
the PyPI `pyspark` wheel, on the machine's Java 17) opens every data file
under a directory (a Hive lake, or a Delta table's files, live or not; not
`_delta_log/`) and counts its rows. Java readers have returned 0 rows on
files with parquet-rs page indexes (apache/arrow-rs#10316); this is the
check that they read what the writer wrote. Prints JSON {relative path: rows}.

    python tools/java_read.py DIR
"""

import json
import os
import pathlib
import sys

from pyspark.sql import SparkSession


def main():
    root = pathlib.Path(sys.argv[1])
    files = sorted(p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts)
    # A local Spark, nothing listening: no UI, loopback only.
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("etl-java-read")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "512m")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        counts = {str(f.relative_to(root)): spark.read.parquet(str(f)).count() for f in files}
    finally:
        spark.stop()
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
