"""A year of nightly runs, simulated locally: file counts and query time of
the lake, before and after compaction, for the Hive layout and Delta.

Each of 365 nights brings the posts created that day (`--per-night`) and
edits of `--edits` older posts spread over earlier days: the edits are what
fragment a lake, since the producer packs one partition per message, so every
night leaves small files in old partitions however big the messages are.
Every night is one `etl run` (incremental, the default 1 MB message budget),
as the nightly schedule does.

Then, per format, a few typical queries through `etl query` (a fresh process
each: planning, listing and reading included), best of `--rounds`:

* `daily`: the `daily_sentiment` view over the whole year (every file);
* `recent`: label counts of the last 30 days (partition pruning);
* `lookup`: one id's newest version (`sentiment_latest`, every file).

Compaction: Delta with `etl compact` (one commit); Hive by rewriting each
partition into one file offline (readers stopped; what `etl compact` refuses
to do on a live Hive lake), to show what the files cost Hive, not to
recommend it. Also: the same year's file count per million records at the
old 128 KiB message budget, to show what bigger messages alone change.
"""

import datetime as _dt
import glob
import json
import os
import random
import shutil
import subprocess
import time

WORDS_POS = ["love", "great", "wonderful", "amazing", "happy", "excellent", "good", "fantastic"]
WORDS_NEG = ["hate", "terrible", "awful", "bad", "sad", "horrible", "worst", "broken"]
FILLER = ["the", "service", "today", "product", "delivery", "support", "app", "update", "price", "team"]


def _text(rng):
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
    for _ in range(rng.randint(0, 3)):
        words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS_POS if rng.random() < 0.6 else WORDS_NEG))
    if rng.random() < 0.05:
        words.append("😀" if rng.random() < 0.5 else "日本語のテキスト")
    return " ".join(words)


def make_nights(out_dir, nights, per_night, edits, seed=7):
    """One JSON-lines input per night; the last night is yesterday (UTC)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(seed)
    today = _dt.datetime.now(_dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today - _dt.timedelta(days=nights)
    paths, created = [], []
    for n in range(nights):
        day = first + _dt.timedelta(days=n)
        lines = []
        for i in range(per_night):
            t = day + _dt.timedelta(seconds=rng.randrange(86_400))
            rid = f"post-{n:03d}-{i:05d}"
            created.append((rid, t))
            lines.append(json.dumps({"id": rid, "text": _text(rng), "created_at": t.isoformat().replace("+00:00", "Z"),
                                     "updated_at": t.isoformat().replace("+00:00", "Z")}, ensure_ascii=False))
        # Edits of older posts, updated tonight: they land in their old partitions.
        older = created[: max(0, len(created) - per_night)]
        edited_at = day + _dt.timedelta(hours=23, minutes=30)
        for rid, t in rng.sample(older, min(edits, len(older))):
            lines.append(json.dumps({"id": rid, "text": _text(rng) + " (edited)", "created_at": t.isoformat().replace("+00:00", "Z"),
                                     "updated_at": edited_at.isoformat().replace("+00:00", "Z")}, ensure_ascii=False))
        p = os.path.join(out_dir, f"night-{n:03d}.jsonl")
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(p)
    return paths, first


def files_per_partition(table):
    parts = {}
    for f in glob.glob(os.path.join(table, "dt=*", "*.parquet")):
        dt = os.path.basename(os.path.dirname(f))
        parts[dt] = parts.get(dt, 0) + 1
    return parts


def delta_live_files(table):
    """Live files from the log (adds minus removes), without delta-rs."""
    live = {}
    for p in sorted(glob.glob(os.path.join(table, "_delta_log", "*.json"))):
        with open(p) as f:
            for line in f:
                a = json.loads(line)
                if "add" in a:
                    live[a["add"]["path"]] = a["add"]["partitionValues"]["dt"]
                elif "remove" in a:
                    live.pop(a["remove"]["path"], None)
    parts = {}
    for dt in live.values():
        parts[dt] = parts.get(dt, 0) + 1
    return parts


def counts(parts, records):
    files = sum(parts.values())
    return {
        "files": files,
        "partitions": len(parts),
        "files_per_partition_mean": round(files / max(1, len(parts)), 2),
        "files_per_partition_max": max(parts.values()) if parts else 0,
        "files_per_million_records": round(files * 1_000_000 / max(1, records)),
    }


def queries(first_day, nights):
    recent = (first_day + _dt.timedelta(days=nights - 30)).strftime("%Y-%m-%d")
    return {
        "daily": "SELECT dt, sentiment, records FROM daily_sentiment ORDER BY dt, sentiment",
        "recent": f"SELECT sentiment, count(*) AS n FROM sentiment WHERE dt >= '{recent}' GROUP BY sentiment ORDER BY sentiment",
        "lookup": "SELECT id, sentiment, updated_at FROM sentiment_latest WHERE id = 'post-100-00042'",
    }


def time_queries(etl, lake, qs, rounds, nice):
    out = {}
    for name, sql in qs.items():
        best, rows = None, None
        for _ in range(rounds):
            t0 = time.perf_counter()
            p = subprocess.run(nice + [etl, "query", "--lake", lake, "--format", "csv", sql], capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if p.returncode != 0:
                raise RuntimeError(f"query {name} on {lake}: {p.stderr[-2000:]}")
            best = wall if best is None else min(best, wall)
            rows = p.stdout
        out[name] = {"best_s": round(best, 3), "result_sha": _sha(rows)}
    out["total_s"] = round(sum(v["best_s"] for v in out.values() if isinstance(v, dict)), 3)
    return out


def _sha(s):
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()[:16]


def hive_offline_rewrite(table):
    """Each partition's files into one (readers stopped)."""
    import pyarrow.parquet as pq
    import pyarrow as pa

    for d in sorted(glob.glob(os.path.join(table, "dt=*"))):
        files = sorted(glob.glob(os.path.join(d, "*.parquet")))
        if len(files) < 2:
            continue
        t = pa.concat_tables([pq.read_table(f) for f in files])
        tmp = os.path.join(d, "compacted.parquet.tmp")
        pq.write_table(t, tmp, compression="snappy")
        for f in files:
            os.remove(f)
        os.replace(tmp, os.path.join(d, "part-compacted.parquet"))


def run(etl, data_dir, nights=365, per_night=3000, edits=40, rounds=3, nice=("nice", "-n", "10"), log=print):
    nice = list(nice)
    inputs, first = make_nights(os.path.join(data_dir, "year"), nights, per_night, edits)
    records = nights * per_night
    versions = records + sum(min(edits, n * per_night) for n in range(nights))
    R = {"nights": nights, "posts_per_night": per_night, "edits_per_night": edits, "records": records, "versions": versions}
    qs = queries(first, nights)
    R["queries"] = qs
    for fmt in ("hive", "delta"):
        lake = os.path.join(data_dir, "lakes", f"year-{fmt}")
        shutil.rmtree(lake, ignore_errors=True)
        log(f"  {fmt}: {nights} nightly runs")
        t0 = time.perf_counter()
        for p in inputs:
            r = subprocess.run(nice + [etl, "run", "--input", p, "--lake", lake, "--table-format", fmt, "--no-table", "--json"],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{fmt} {p}: {r.stderr[-2000:]}")
        runs_s = time.perf_counter() - t0
        table = os.path.join(lake, "sentiment")
        before = delta_live_files(table) if fmt == "delta" else files_per_partition(table)
        q_before = time_queries(etl, lake, qs, rounds, nice)
        t0 = time.perf_counter()
        if fmt == "delta":
            c = subprocess.run(nice + [etl, "compact", "--lake", lake, "--json"], capture_output=True, text=True)
            if c.returncode != 0:
                raise RuntimeError(f"compact: {c.stderr[-2000:]}")
            compact = {"how": "etl compact (one Delta commit)", "report_version": json.loads(c.stdout).get("version")}
        else:
            hive_offline_rewrite(table)
            compact = {"how": "offline rewrite, one file per partition, readers stopped (not safe on a live lake)"}
        compact["wall_s"] = round(time.perf_counter() - t0, 2)
        after = delta_live_files(table) if fmt == "delta" else files_per_partition(table)
        q_after = time_queries(etl, lake, qs, rounds, nice)
        for name in qs:
            assert q_before[name]["result_sha"] == q_after[name]["result_sha"], f"{fmt} {name}: compaction changed the answer"
        R[fmt] = {
            "nightly_runs_wall_s": round(runs_s, 1),
            "before": counts(before, versions),
            "after": counts(after, versions),
            "compaction": compact,
            "queries_before": q_before,
            "queries_after": q_after,
            "query_speedup": round(q_before["total_s"] / max(q_after["total_s"], 1e-9), 2),
        }
        log(f"  {fmt}: {R[fmt]['before']['files']} files → {R[fmt]['after']['files']}; queries {q_before['total_s']} s → {q_after['total_s']} s")
    # Bigger messages alone: the same year (new posts only, no edits) at the
    # old 128 KiB budget and at the default.
    one = os.path.join(data_dir, "year", "all-new.jsonl")
    with open(one, "w") as out:
        for p in inputs:
            with open(p) as f:
                for line in f:
                    if "(edited)" not in line:
                        out.write(line)
    R["message_budget"] = {}
    for label, budget in (("128 KiB (before)", "131072"), ("1 MB (default)", None)):
        lake = os.path.join(data_dir, "lakes", "year-budget")
        shutil.rmtree(lake, ignore_errors=True)
        cmd = nice + [etl, "run", "--input", one, "--lake", lake, "--no-table", "--json"] + (["--message-bytes", budget] if budget else [])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"budget {label}: {r.stderr[-2000:]}")
        s = json.loads(r.stdout)
        parts = files_per_partition(os.path.join(lake, "sentiment"))
        R["message_budget"][label] = {"messages": s["produce"]["messages"], **counts(parts, records)}
        log(f"  budget {label}: {s['produce']['messages']} messages, {sum(parts.values())} files")
    shutil.rmtree(os.path.join(data_dir, "lakes", "year-budget"), ignore_errors=True)
    return R


def fmt(R):
    L = [f"## a year of nightly runs ({R['nights']} nights, {R['posts_per_night']} posts and {R['edits_per_night']} edits a night, "
         f"{R['versions']:,} versions)\n"]
    L.append("| format | files before | per partition (mean/max) | files after | per partition | queries before s | after s | speed-up | compaction s |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in ("hive", "delta"):
        x = R[f]
        L.append(f"| {f} | {x['before']['files']:,} | {x['before']['files_per_partition_mean']}/{x['before']['files_per_partition_max']} | "
                 f"{x['after']['files']:,} | {x['after']['files_per_partition_mean']} | {x['queries_before']['total_s']} | "
                 f"{x['queries_after']['total_s']} | {x['query_speedup']}× | {x['compaction']['wall_s']} |")
    L.append("")
    for label, m in R["message_budget"].items():
        L.append(f"- message budget {label}: {m['messages']:,} messages, {m['files']:,} files, {m['files_per_million_records']:,} files per million records, "
                 f"{m['files_per_partition_mean']} per partition")
    L.append("")
    return "\n".join(L)


def delta_commits(etl, data_dir, nights=60, per_night=1000, edits=20, workers=(2, 4), baseline_etl=None,
                  nice=("nice", "-n", "10"), log=print):
    """What Delta's commits cost a run: `nights` incremental `etl run`s into a
    Delta lake, per worker count, with this `etl` and (if given) a baseline
    `etl` built from earlier code (one commit per message), night by night in
    alternating order so both share the machine's noise. Reports wall time,
    messages and table versions (commits) per lake; the lakes must hold the
    same rows."""
    nice = list(nice)
    inputs, _ = make_nights(os.path.join(data_dir, "commits"), nights, per_night, edits, seed=11)
    builds = [("current", etl)] + ([("baseline", baseline_etl)] if baseline_etl else [])
    R = {"nights": nights, "posts_per_night": per_night, "edits_per_night": edits, "runs": {}}
    for w in workers:
        lakes = {name: os.path.join(data_dir, "lakes", f"commits-{name}-w{w}") for name, _ in builds}
        for lake in lakes.values():
            shutil.rmtree(lake, ignore_errors=True)
        wall = {name: 0.0 for name, _ in builds}
        messages = {name: 0 for name, _ in builds}
        log(f"  delta commits, {w} workers: {nights} nights × {len(builds)} builds")
        for n, p in enumerate(inputs):
            order = builds if n % 2 == 0 else builds[::-1]
            for name, binary in order:
                t0 = time.perf_counter()
                r = subprocess.run(nice + [binary, "run", "--input", p, "--lake", lakes[name], "--table-format", "delta",
                                           "--workers", str(w), "--no-table", "--json"], capture_output=True, text=True)
                wall[name] += time.perf_counter() - t0
                if r.returncode != 0:
                    raise RuntimeError(f"{name} {p}: {r.stderr[-2000:]}")
                messages[name] += json.loads(r.stdout)["produce"]["messages"]
        rows = {}
        for name, _ in builds:
            log_dir = os.path.join(lakes[name], "sentiment", "_delta_log")
            commits = len([f for f in os.listdir(log_dir) if f.endswith(".json") and f[:-5].isdigit()]) - 1
            rows[name] = {"wall_s": round(wall[name], 1), "messages": messages[name], "commits": commits,
                          "messages_per_commit": round(messages[name] / max(commits, 1), 2),
                          "live_files": sum(delta_live_files(os.path.join(lakes[name], "sentiment")).values())}
        if baseline_etl:
            # What each record version holds (all but processed_at, the run's clock).
            q = ("SELECT id, updated_at, created_at, text, sentiment, score_compound, dt FROM sentiment "
                 "ORDER BY id, updated_at")
            answers = {name: subprocess.run([b, "query", "--lake", lakes[name], "--format", "csv", q],
                                            capture_output=True, text=True, check=True).stdout for name, b in builds}
            assert answers["current"] == answers["baseline"], f"the lakes differ: {answers}"
            rows["wall_ratio"] = round(rows["baseline"]["wall_s"] / max(rows["current"]["wall_s"], 1e-9), 2)
            rows["commit_ratio"] = round(rows["baseline"]["commits"] / max(rows["current"]["commits"], 1), 2)
        R["runs"][str(w)] = rows
        log(f"  {w} workers: {rows}")
        for lake in lakes.values():
            shutil.rmtree(lake, ignore_errors=True)
    return R


def fmt_commits(R):
    L = [f"## Delta commits ({R['nights']} nights, {R['posts_per_night']} posts and {R['edits_per_night']} edits a night)\n",
         "| workers | build | runs wall s | messages | commits | messages per commit | ratio (baseline / current) |",
         "|---:|---|---:|---:|---:|---:|---|"]
    for w, rows in R["runs"].items():
        for name in ("baseline", "current"):
            if name in rows:
                x = rows[name]
                ratio = f"wall {rows['wall_ratio']}×, commits {rows['commit_ratio']}×" if name == "current" and "wall_ratio" in rows else ""
                L.append(f"| {w} | {name} | {x['wall_s']} | {x['messages']} | {x['commits']} | {x['messages_per_commit']} | {ratio} |")
    return "\n".join(L)
