"""The Athena views as template.yaml must declare them, computed from the
single definition in crates/core/src/views.rs (which the local DataFusion
views use too).

Run it to print the two Glue VIRTUAL_VIEW tables' ViewOriginalText JSON after
changing a view in Rust:  python tests/iac/views.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIEWS_RS = ROOT / "crates" / "core" / "src" / "views.rs"
OUTPUT_RS = ROOT / "crates" / "core" / "src" / "output.rs"

# Hive type (Glue StorageDescriptor) -> the Trino type Athena engine 3 records in a view,
# per table format: Trino's Delta connector reads a Delta `timestamp` as
# `timestamp(3) with time zone`, its Hive connector a Parquet timestamp as `timestamp(3)`.
PRESTO_TYPES = {
    "hive": {"string": "varchar", "timestamp": "timestamp(3)", "double": "double", "bigint": "bigint"},
    "delta": {"string": "varchar", "timestamp": "timestamp(3) with time zone", "double": "double", "bigint": "bigint"},
}

# (table format, IncludeText) of every variant the template declares.
VARIANTS = [(fmt, text) for fmt in ("hive", "delta") for text in (True, False)]

# What Fn::Sub puts in place of the database reference.
DATABASE_PLACEHOLDER = "${GlueDatabase}"


def rust_str_const(rust: str, name: str) -> str:
    m = re.search(rf'pub const {name}\s*:\s*&str\s*=\s*"([^"\\]*)";', rust)
    assert m, f"{name} not found (or it has escapes) in {VIEWS_RS}"
    return m.group(1)


def rust_columns(rust: str, name: str) -> list[tuple[str, str]]:
    m = re.search(rf"pub const {name}\s*:\s*&\[\(&str,\s*&str\)\]\s*=\s*&\[(.*?)\];", rust, re.S)
    assert m, f"{name} not found"
    return re.findall(r'\(\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\)', m.group(1))


def views(include_text: bool = True) -> dict[str, dict]:
    """View name -> {"sql": originalSql, "columns": [(name, hive type)]}, in creation order.
    Without text (IncludeText=false) `sentiment_latest` leaves the column out: a
    Delta table written without it has no such column to select."""
    rust = VIEWS_RS.read_text()
    table_columns = [
        c for c in rust_columns(OUTPUT_RS.read_text(), "COLUMNS") if include_text or c[0] != "text"
    ] + [("dt", "string")]
    latest_sql = rust_str_const(rust, "SENTIMENT_LATEST_SQL").replace(
        "{columns}", ", ".join(name for name, _ in table_columns)
    )
    return {
        rust_str_const(rust, "LATEST_VIEW"): {"sql": latest_sql, "columns": table_columns},
        rust_str_const(rust, "DAILY_VIEW"): {
            "sql": rust_str_const(rust, "DAILY_SENTIMENT_SQL"),
            "columns": rust_columns(rust, "DAILY_COLUMNS"),
        },
    }


def presto_view_json(view: dict, schema: str = DATABASE_PLACEHOLDER, fmt: str = "hive") -> str:
    """The JSON Athena stores base64-encoded in a view's ViewOriginalText."""
    return json.dumps(
        {
            "originalSql": view["sql"],
            "catalog": "awsdatacatalog",
            "schema": schema,
            "columns": [{"name": n, "type": PRESTO_TYPES[fmt][t]} for n, t in view["columns"]],
        },
        separators=(",", ":"),
    )


if __name__ == "__main__":
    for fmt, text in VARIANTS:
        for name, view in views(text).items():
            sys.stdout.write(f"{name} ({fmt}, IncludeText={str(text).lower()}):\n  {presto_view_json(view, fmt=fmt)}\n")
