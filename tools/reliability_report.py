#!/usr/bin/env python3
"""Summarise the reliability scenarios' JSON lines into a table.

Each line (appended by tests/e2e/faults/ when RELIABILITY_REPORT is set):

    {"scenario": "...", "backend": "aws"|"local", "ok": true,
     "records": {"source": N, "lake": L, "dead_letter": D, "duplicates": 0, "missing": 0, ...},
     "faults": {"by_kind": {"throttle": n, ...}, "injected": n, "by_op": {"s3/PutObject": {...}}},
     "extra": {...}, "elapsed_ms": n}

Usage: reliability_report.py REPORT.jsonl [--markdown OUT.md] [--json OUT.json]
Prints the table (Markdown) on stdout. Exit status 1 when a scenario's
accounting failed or the report is empty. Standard library only.
"""

import argparse
import json
import sys
from collections import Counter, OrderedDict

KIND_ORDER = [
    "throttle", "http500", "http503", "reset", "slow", "partial_batch",
    "lose_answer", "hang", "hang_after_forward",
]


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{n}: not JSON: {e}")
    return rows


def kinds_text(by_kind):
    keys = [k for k in KIND_ORDER if k in by_kind] + sorted(k for k in by_kind if k not in KIND_ORDER)
    return ", ".join(f"{k} {by_kind[k]}" for k in keys if by_kind[k]) or "none"


def table(rows):
    out = []
    out.append("| scenario | backend | faults injected | by kind | source | lake | dead-letter | dup | missing | result | time (s) |")
    out.append("|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|")
    totals = Counter()
    kinds = Counter()
    for r in rows:
        rec = r.get("records", {})
        faults = r.get("faults", {})
        by_kind = faults.get("by_kind", {})
        injected = faults.get("injected", sum(by_kind.values()))
        kinds.update(by_kind)
        for k in ("source", "lake", "dead_letter", "duplicates", "missing"):
            totals[k] += rec.get(k, 0)
        totals["injected"] += injected
        out.append(
            "| {s} | {b} | {i} | {k} | {src} | {lake} | {dl} | {dup} | {miss} | {res} | {t:.1f} |".format(
                s=r.get("scenario", "?"),
                b=r.get("backend", "?"),
                i=injected,
                k=kinds_text(by_kind),
                src=rec.get("source", 0),
                lake=rec.get("lake", 0),
                dl=rec.get("dead_letter", 0),
                dup=rec.get("duplicates", 0),
                miss=rec.get("missing", 0),
                res="exact" if r.get("ok") else "**FAILED**",
                t=r.get("elapsed_ms", 0) / 1000,
            )
        )
    out.append(
        "| **total** ({n} scenarios) | | {i} | {k} | {src} | {lake} | {dl} | {dup} | {miss} | {ok}/{n} exact | |".format(
            n=len(rows),
            i=totals["injected"],
            k=kinds_text(kinds),
            src=totals["source"],
            lake=totals["lake"],
            dl=totals["dead_letter"],
            dup=totals["duplicates"],
            miss=totals["missing"],
            ok=sum(1 for r in rows if r.get("ok")),
        )
    )
    return "\n".join(out), totals, kinds


def by_operation(rows):
    ops = Counter()
    for r in rows:
        for op, counts in r.get("faults", {}).get("by_op", {}).items():
            for kind, n in counts.items():
                if kind in KIND_ORDER:
                    ops[(op, kind)] += n
    if not ops:
        return ""
    lines = ["| operation | fault | injected |", "|---|---|---:|"]
    for (op, kind), n in sorted(ops.items()):
        lines.append(f"| {op} | {kind} | {n} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    ap.add_argument("--markdown")
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        rows = load(args.report)
    except FileNotFoundError:
        print(f"{args.report}: no report (did the scenarios run?)", file=sys.stderr)
        return 1
    if not rows:
        print(f"{args.report}: empty", file=sys.stderr)
        return 1
    rows.sort(key=lambda r: (r.get("backend", ""), r.get("scenario", "")))
    main_table, totals, kinds = table(rows)
    ops = by_operation(rows)
    text = "## Reliability scenarios\n\n" + main_table + "\n"
    if ops:
        text += "\n### Injected faults by operation (AWS path, fault proxy)\n\n" + ops + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(text)
    if args.json:
        summary = OrderedDict(
            scenarios=len(rows),
            exact=sum(1 for r in rows if r.get("ok")),
            faults_injected=totals["injected"],
            faults_by_kind=dict(kinds),
            records=dict((k, totals[k]) for k in ("source", "lake", "dead_letter", "duplicates", "missing")),
        )
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
