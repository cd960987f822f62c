#!/usr/bin/env python3
"""`make bench`: etl run against the Python reference, measured.

Steps (each result goes into bench/results/latest.json, and a readable
summary into bench/results/summary.md):

1. machine facts (nproc, CPU model, memory, load) and tool versions;
2. generate 10k / 100k / 1M posts with `etl gen` under bench/data/ (kept);
3. at 100k: the Python reference and `etl run` ALTERNATELY, `--rounds` each
   (default 3), a fresh lake every time; wall, user+sys CPU, peak RSS
   (GNU time %M, or VmHWM polled), records/s, output bytes and files;
   row counts of both lakes must equal the input, and the scores must match
   record by record;
4. at 1M: the same, one round each (skipped with --quick or --no-1m);
5. hot path alone: `etl-bench-hotpath` (bench/hotpath, one thread, no I/O)
   and bench/python/hotpath.py on the same 100k posts; `etl run --workers 1`
   vs `--workers 2` for scaling;
6. memory flatness: peak RSS of `etl run` at 10k, 100k and 1M;
7. calls per 10,000 records: messages/files from `etl run --json` and the
   design's deterministic counts from the hot-path bench, turned into
   estimated $ per million records (assumptions in the output);
8. a year of nightly runs (bench/lake_year.py): 365 incremental `etl run`s
   per table format, files per partition and the time of typical queries
   before and after compaction, and files per million records at the old
   128 KiB message budget and the default;
   then what Delta's commits cost: 60 nights into a Delta lake at 2 and 4
   workers, wall time, messages and commits (group commits share a version),
   against an `etl` built from earlier code when `--baseline-etl` names one;
9. Lambda: zip sizes of any built bootstrap, start-up (spawn → first GET
   /runtime/invocation/next) of release producer/consumer if built, the
   Python boto3 equivalent, and the consumer's peak RSS on a 10k-record
   SQS batch (against a local fake S3/Glue).

Everything runs under `nice -n 10` (the machine is shared).
"""

import argparse
import datetime as _dt
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "python"))
sys.path.insert(0, HERE)

NICE = ["nice", "-n", "10"]
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- measuring


# GNU time (Debian package `time`); `time` on PATH may be a shell keyword wrapper.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def _poll_hwm(pid, stop, out):
    """Fallback peak RSS: VmHWM of the process, read until it exits."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        out[0] = max(out[0], int(line.split()[1]))
        except OSError:
            return
        stop.wait(0.02)


def measure(cmd, label, nice=True):
    """Run cmd; wall time, user+sys CPU (wait4), peak RSS, stdout.

    Peak RSS is NOT wait4's ru_maxrss: Linux carries the parent's high-water
    mark into a forked child across exec, so every child of this (large)
    Python process would report at least our own RSS. GNU time, a small
    process, reports its child's %M exactly; without it, VmHWM is polled.
    """
    import threading

    full = (NICE if nice else []) + list(cmd)
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as tf:
        argv = ([GNU_TIME, "-f", "%M", "-o", tf.name] if GNU_TIME else []) + full
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        hwm, stop = [0], threading.Event()
        poller = None
        if not GNU_TIME:
            poller = threading.Thread(target=_poll_hwm, args=(p.pid, stop, hwm), daemon=True)
            poller.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        if poller:
            poller.join()
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        peak = hwm[0]
        if GNU_TIME:
            try:
                peak = int(tf.read().strip().splitlines()[-1])
            except (ValueError, IndexError):
                peak = 0
    if p.returncode != 0:
        raise RuntimeError(f"{label}: exit {p.returncode}\n$ {' '.join(full)}\n{stderr[-3000:]}")
    r = {
        "label": label,
        "cmd": " ".join(full),
        "wall_s": round(wall, 3),
        "user_s": round(ru.ru_utime, 3),
        "sys_s": round(ru.ru_stime, 3),
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
        "peak_rss_kib": peak,
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_rss_method": "GNU time %M" if GNU_TIME else "VmHWM polled every 20 ms",
        "load_before": round(load, 2),
        "stdout": stdout,
    }
    log(f"  {label}: wall {r['wall_s']} s, cpu {r['cpu_s']} s, peak RSS {r['peak_rss_mib']} MiB (load {load:.1f})")
    return r


def lake_stats(table_dir):
    import pyarrow.dataset as ds

    files = [f for f in glob.glob(os.path.join(table_dir, "**", "*.parquet"), recursive=True)]
    nbytes = sum(os.path.getsize(f) for f in files)
    rows = ds.dataset(table_dir, format="parquet", partitioning="hive").count_rows() if files else 0
    return {"rows": rows, "files": len(files), "bytes": nbytes}


def parity(py_table_dir, rs_table_dir):
    """Compare the two lakes record by record (scores, label, timestamps)."""
    import pyarrow.dataset as ds

    cols = [
        "id", "created_at", "updated_at", "language", "sentiment", "score_positive", "score_negative",
        "score_neutral", "score_mixed", "score_compound", "engine",
    ]
    a = ds.dataset(py_table_dir, format="parquet", partitioning="hive").to_table(columns=cols + ["dt"]).sort_by("id")
    b = ds.dataset(rs_table_dir, format="parquet", partitioning="hive").to_table(columns=cols + ["dt"]).sort_by("id")
    if a.num_rows != b.num_rows:
        return {"rows_py": a.num_rows, "rows_rs": b.num_rows, "equal": False}
    diff = {}
    for c in cols + ["dt"]:
        x, y = a[c].to_pylist(), b[c].to_pylist()
        if c == "dt":
            x, y = [str(v) for v in x], [str(v) for v in y]
        n = sum(1 for i in range(len(x)) if x[i] != y[i])
        if n:
            diff[c] = n
    return {"rows": a.num_rows, "columns_compared": cols + ["dt"], "mismatches": diff, "equal": not diff}


# ---------------------------------------------------------------- steps


def machine():
    cpu = "?"
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])

    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return None

    import pandas
    import pyarrow

    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "avx2": " avx2" in flags,
        "mem_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "rustc": ver(["rustc", "--version"]),
        "python": platform.python_version(),
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
    }


def gen_data(etl, data_dir, sizes):
    os.makedirs(data_dir, exist_ok=True)
    paths = {}
    for name in sizes:
        n = SIZES[name]
        path = os.path.join(data_dir, f"posts-{name}.jsonl")
        if not os.path.exists(path):
            log(f"generating {n} posts → {path}")
            tmp = path + ".tmp"
            subprocess.run(NICE + [etl, "gen", "--count", str(n), "--days", "30", "--seed", "42", "--output", tmp], check=True)
            os.replace(tmp, path)
        paths[name] = path
    return paths


def run_python(py, inp, lake, label):
    shutil.rmtree(lake, ignore_errors=True)
    r = measure([py, os.path.join(HERE, "python", "reference.py"), "--input", inp, "--lake", lake], label)
    r["stages"] = json.loads(r.pop("stdout").strip().splitlines()[-1])
    r["lake"] = lake_stats(os.path.join(lake, "sentiment"))
    return r


def run_etl(etl, inp, lake, label, workers=None):
    shutil.rmtree(lake, ignore_errors=True)
    cmd = [etl, "run", "--input", inp, "--lake", lake, "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    r = measure(cmd, label)
    r["summary"] = json.loads(r.pop("stdout"))
    r["lake"] = lake_stats(os.path.join(lake, "sentiment"))
    return r


def compare(etl, py, inp, n, rounds, lakes):
    """Python reference and etl run alternately, fresh lakes, same input."""
    runs = {"python": [], "etl": []}
    for i in range(rounds):
        runs["python"].append(run_python(py, inp, os.path.join(lakes, "py"), f"python #{i + 1}"))
        runs["etl"].append(run_etl(etl, inp, os.path.join(lakes, "rs"), f"etl run #{i + 1}"))
    for k in runs:
        for r in runs[k]:
            if r["lake"]["rows"] != n:
                raise RuntimeError(f"{r['label']}: {r['lake']['rows']} rows in the lake, expected {n}")
            r["records_per_s"] = round(n / r["wall_s"], 1)
            r["records_per_cpu_s"] = round(n / r["cpu_s"], 1)
    out = {"records": n, "rounds": rounds, "runs": runs}
    out["parity"] = parity(os.path.join(lakes, "py", "sentiment"), os.path.join(lakes, "rs", "sentiment"))
    for k in runs:
        walls = sorted(r["wall_s"] for r in runs[k])
        cpus = sorted(r["cpu_s"] for r in runs[k])
        rss = sorted(r["peak_rss_kib"] for r in runs[k])
        out[k] = {
            "wall_s_median": walls[len(walls) // 2],
            "wall_s_min": walls[0],
            "cpu_s_median": cpus[len(cpus) // 2],
            "peak_rss_mib_max": round(rss[-1] / 1024, 1),
            "records_per_s_median": round(n / walls[len(walls) // 2], 1),
            "records_per_cpu_s_median": round(n / cpus[len(cpus) // 2], 1),
            "output_bytes": runs[k][-1]["lake"]["bytes"],
            "files": runs[k][-1]["lake"]["files"],
        }
    out["ratio"] = {
        "throughput_wall": round(out["python"]["wall_s_median"] / out["etl"]["wall_s_median"], 1),
        "throughput_cpu": round(out["python"]["cpu_s_median"] / out["etl"]["cpu_s_median"], 1),
        "peak_rss_etl_over_python": round(out["etl"]["peak_rss_mib_max"] / out["python"]["peak_rss_mib_max"], 3),
        "output_bytes_etl_over_python": round(out["etl"]["output_bytes"] / out["python"]["output_bytes"], 3),
    }
    log(f"  ratio: {out['ratio']}; parity equal={out['parity'].get('equal')}")
    return out


def hotpath(hot_bin, py, inp, repeat):
    r = measure([hot_bin, "--input", inp, "--repeat", str(repeat)], "rust hot path")
    r["result"] = json.loads(r.pop("stdout").strip().splitlines()[-1])
    p = measure([py, os.path.join(HERE, "python", "hotpath.py"), "--input", inp], "python hot path")
    p["result"] = json.loads(p.pop("stdout").strip().splitlines()[-1])
    rs_rate = r["result"]["consume_records_per_s"]
    py_rate = p["result"]["records_per_s"]
    return {
        "rust": r,
        "python": p,
        "ratio_per_core": round(rs_rate / py_rate, 1),
        "ratio_score_only": round(
            r["result"]["score_records_per_s"] / (p["result"]["rows"] / p["result"]["score_s"]), 1
        ),
    }


def scaling(etl, inp, n, lakes):
    out = {}
    for w in (1, 2):
        rs = [run_etl(etl, inp, os.path.join(lakes, f"w{w}"), f"etl run --workers {w} #{i + 1}", workers=w) for i in range(2)]
        best = min(rs, key=lambda r: r["wall_s"])
        out[f"workers_{w}"] = {
            "wall_s_best": best["wall_s"],
            "cpu_s": best["cpu_s"],
            "peak_rss_mib": best["peak_rss_mib"],
            "records_per_s": round(n / best["wall_s"], 1),
            "records_per_cpu_s": round(n / best["cpu_s"], 1),
        }
    out["speedup_2_over_1"] = round(out["workers_1"]["wall_s_best"] / out["workers_2"]["wall_s_best"], 2)
    return out


# ---------------------------------------------------------------- cost model

PRICES = {
    # us-east-1 list prices (see BENCHMARKS.md for sources and dates).
    "sqs_per_request": 0.40 / 1e6,  # standard queue, per 64 KiB chunk of payload
    "s3_put": 0.005 / 1000,
    "comprehend_unit": 0.0001,  # 100 characters, 3-unit minimum per document
    "dynamodb_rru": 0.125 / 1e6,  # on-demand, since 2024-11-01 (was 0.25)
    "lambda_arm_gb_s": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "glue_request": 1.00 / 1e6,  # Data Catalog requests beyond the free million
}


def cost_model(design, rs_core_rate, py_core_rate, sqs_batch_size=10, consumer_mb=1024, comprehend_call_s=0.15,
               single_call_s=0.05):
    """Estimated $ per million records. `design` is the hot-path bench output for one input."""
    n = design["records"]
    scale = 1e6 / n
    msgs = design["messages"] * scale
    # SQS: the producer's SendMessageBatch (billed per 64 KiB of payload per call),
    # the event source mapping's ReceiveMessage (≈ payload chunks again) and
    # DeleteMessageBatch (≈ one per invocation).
    invocations = math.ceil(msgs / sqs_batch_size)
    sqs_requests = design["sqs_send_billed_requests"] * scale + design["sqs_message_64k_chunks"] * scale + invocations
    s3_puts = design["files"] * scale
    ddb_rru = math.ceil(design["dynamodb_item_bytes_est"] * scale / 4096) * 0.5
    comprehend_units = design["comprehend_units"] * scale
    glue_calls = 0  # partitions are registered once per dt per container; ~30/month
    cpu_gb_s = 1.769  # Lambda gives one full vCPU at 1,769 MB: CPU-bound GB-s do not depend on the memory size
    vader_lambda_s = 1e6 / rs_core_rate  # seconds of one vCPU
    py_lambda_s = 1e6 / py_core_rate
    comprehend_lambda_s = design["comprehend_batch_calls"] * scale * comprehend_call_s / 4  # 4 messages at once
    common = {
        "sqs": sqs_requests * PRICES["sqs_per_request"],
        "s3_put": s3_puts * PRICES["s3_put"],
        "dynamodb_scan": ddb_rru * PRICES["dynamodb_rru"],
        "lambda_requests": invocations * PRICES["lambda_request"],
    }

    def total(extra):
        d = dict(common, **extra)
        d = {k: round(v, 4) for k, v in d.items()}
        d["total"] = round(sum(d.values()), 4)
        return d

    # The naive design: one SQS message, one Lambda invocation (SQS batch size 1),
    # one Comprehend DetectSentiment and one S3 object per record.
    one_per_item = {
        "sqs": 1e6 * 3 * PRICES["sqs_per_request"],  # send + receive + delete per record
        "s3_put": 1e6 * PRICES["s3_put"],
        "dynamodb_scan": ddb_rru * PRICES["dynamodb_rru"],
        "lambda_requests": 1e6 * PRICES["lambda_request"],
        # Units are per document either way: batching saves calls, not units.
        "comprehend": comprehend_units * PRICES["comprehend_unit"],
        "lambda_compute": 1e6 * single_call_s * consumer_mb / 1024 * PRICES["lambda_arm_gb_s"],
    }
    one_per_item = {k: round(v, 4) for k, v in one_per_item.items()}
    one_per_item["total"] = round(sum(one_per_item.values()), 4)
    return {
        "assumptions": {
            "records": "1,000,000 with the size distribution of the generated posts",
            "sqs_batch_size": sqs_batch_size,
            "consumer_memory_mb": consumer_mb,
            "lambda_cpu": "CPU-bound work billed as 1,769 MB-seconds per vCPU-second (Lambda scales CPU with memory up to 1 vCPU at 1,769 MB); arm64 Graviton assumed as fast per core as this machine (not measured)",
            "comprehend_batch_call_latency_s": comprehend_call_s,
            "comprehend_single_call_latency_s (one-per-item design)": single_call_s,
            "comprehend_concurrency": "MESSAGE_CONCURRENCY=4 messages at once per invocation, calls within a message sequential",
            "dynamodb": "Scan, eventually consistent: 0.5 RRU per 4 KB of item data; item size estimated from attribute names + values",
            "free_tiers": "ignored",
        },
        "counts_per_million": {
            "messages": round(msgs),
            "sqs_send_message_batch_calls": round(design["sqs_send_message_batch_calls"] * scale),
            "sqs_billed_requests": round(sqs_requests),
            "consumer_invocations": invocations,
            "s3_puts": round(s3_puts),
            "comprehend_batch_calls": round(design["comprehend_batch_calls"] * scale),
            "comprehend_units": round(comprehend_units),
            "dynamodb_rru": round(ddb_rru),
            "vader_lambda_vcpu_s": round(vader_lambda_s, 1),
            "python_vader_lambda_vcpu_s": round(py_lambda_s, 1),
        },
        "usd_per_million": {
            "rust_vader": total({"lambda_compute": vader_lambda_s * cpu_gb_s * PRICES["lambda_arm_gb_s"]}),
            "rust_comprehend": total(
                {
                    "comprehend": comprehend_units * PRICES["comprehend_unit"],
                    "lambda_compute": comprehend_lambda_s * consumer_mb / 1024 * PRICES["lambda_arm_gb_s"],
                }
            ),
            "python_vader_same_design": total({"lambda_compute": py_lambda_s * cpu_gb_s * PRICES["lambda_arm_gb_s"]}),
            "one_call_per_item_comprehend": one_per_item,
        },
    }


# ---------------------------------------------------------------- lambda


def find_bootstraps(target_dir):
    pats = [
        os.path.join(target_dir, "lambda", "*", "bootstrap"),
        os.path.join(ROOT, "target", "lambda", "*", "bootstrap"),
        os.path.join(ROOT, ".aws-sam", "build", "*", "bootstrap"),
    ]
    found = {}
    for pat in pats:
        for f in sorted(glob.glob(pat)):
            found[f] = os.path.basename(os.path.dirname(f))
    return found


def zip_size(path):
    with tempfile.TemporaryDirectory() as d:
        z = os.path.join(d, "f.zip")
        with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            zf.write(path, "bootstrap")
        return os.path.getsize(z)


def file_kind(path):
    try:
        return subprocess.run(["file", "-b", path], capture_output=True, text=True).stdout.strip()[:120]
    except OSError:
        with open(path, "rb") as f:
            head = f.read(20)
        return {b"\x3e\x00": "x86-64 ELF", b"\xb7\x00": "aarch64 ELF"}.get(head[18:20], "ELF?")


def lambda_section(target_dir, py, hot_bin, data10k, runs, results_dir):
    import lambda_startup as ls

    out = {"packages": [], "startup": {}, "consumer_batch": None, "not_measured": []}
    for f, name in find_bootstraps(target_dir).items():
        out["packages"].append(
            {"function": name, "path": f, "kind": file_kind(f), "binary_bytes": os.path.getsize(f), "zip9_bytes": zip_size(f)}
        )
    if not out["packages"]:
        out["not_measured"].append(
            "zip size: no bootstrap found under $CARGO_TARGET_DIR/lambda/*/, target/lambda/*/ or .aws-sam/build/*/ "
            "(run `make build` or `cargo lambda build --release --arm64` first)"
        )
    rel = os.path.join(target_dir, "release")
    for kind in ("producer", "consumer"):
        b = os.path.join(rel, kind)
        if os.path.exists(b):
            log(f"  start-up {kind} ({runs} runs)")
            out["startup"][kind] = ls.startup_stats([b], kind, runs)
            out["startup"][kind]["binary_bytes"] = os.path.getsize(b)
            out["startup"][kind]["zip9_bytes"] = zip_size(b)
            if kind == "consumer":
                log(f"  start-up consumer with TABLE_FORMAT=delta ({runs} runs)")
                out["startup"]["consumer_delta"] = ls.startup_stats([b], kind, runs, extra_env={"TABLE_FORMAT": "delta"})
        else:
            out["not_measured"].append(f"start-up of {kind}: {b} not built (nice -n 10 cargo build --release -p producer -p consumer)")
    if shutil.which("bash"):
        # The harness floor: a "function" that only opens the socket and sends
        # GET /next (bash's /dev/tcp): spawn + nice + exec + the server's own latency.
        log(f"  start-up harness floor (bash /dev/tcp, {runs} runs)")
        null = ["bash", "-c", "exec 3<>/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}; "
                "printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; cat <&3"]
        out["startup"]["harness_floor_bash"] = ls.startup_stats(null, "producer", runs)
    log(f"  start-up python boto3 ({runs} runs)")
    out["startup"]["python_boto3"] = ls.startup_stats(ls.python_argv(py), "consumer", runs)
    cons = os.path.join(rel, "consumer")
    if os.path.exists(cons) and hot_bin:
        ev = os.path.join(results_dir, "sqs-event-10k.json")
        subprocess.run(NICE + [hot_bin, "--input", data10k, "--emit-sqs-event", ev, "--event-records", "10000"],
                       check=True, stdout=subprocess.DEVNULL)
        log("  consumer on a 10k-record SQS batch")
        out["consumer_batch"] = ls.consumer_batch(cons, ev)
    elif not os.path.exists(cons):
        out["not_measured"].append("consumer peak RSS on a 10k-record batch: release consumer not built")
    moto = os.environ.get("MOTO_SERVER")
    if os.path.exists(cons) and moto and os.path.exists(moto):
        # The 10k batch when the hot-path bench made it, else the sample event.
        ev = os.path.join(results_dir, "sqs-event-10k.json")
        if not os.path.exists(ev):
            ev = os.path.join(HERE, "..", "events", "sqs-batch.json")
        log(f"  consumer against moto, Hive and Delta, two fresh processes each ({os.path.basename(ev)})")
        out["consumer_batch_moto"] = {"event": os.path.basename(ev), **ls.consumer_batches_on_moto(cons, ev, moto)}
    else:
        out["not_measured"].append("consumer batch against moto (Hive vs Delta): no release consumer or MOTO_SERVER")
    return out


# ---------------------------------------------------------------- report


def fmt_summary(R):
    L = []
    m = R["machine"]
    L.append(f"# bench results {m['date_utc']}\n")
    L.append(f"machine: {m['nproc']} × {m['cpu_model']}, {m['mem_gib']} GiB, load at start {m['loadavg_at_start']}; "
             f"{m['rustc']}, Python {m['python']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}\n")
    for size in ("100k", "1M"):
        c = R.get("compare", {}).get(size)
        if not c:
            continue
        L.append(f"## {size} records, {c['rounds']} round(s) each, alternating\n")
        L.append("| run | wall s | user s | sys s | peak RSS MiB | records/s | output bytes | files |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for i in range(c["rounds"]):
            for k in ("python", "etl"):
                r = c["runs"][k][i]
                L.append(f"| {r['label']} | {r['wall_s']} | {r['user_s']} | {r['sys_s']} | {r['peak_rss_mib']} | "
                         f"{r['records_per_s']:,.0f} | {r['lake']['bytes']:,} | {r['lake']['files']} |")
        L.append("")
        L.append(f"ratios: {c['ratio']}; parity: {c['parity']}\n")
    if "hotpath" in R:
        h = R["hotpath"]
        L.append("## hot path alone (one thread, no input I/O)\n")
        L.append(f"rust: {json.dumps(h['rust']['result']['timing_s'])}, consume {h['rust']['result']['consume_records_per_s']:,.0f} rec/s; "
                 f"python: {json.dumps({k: h['python']['result'][k] for k in ('score_s', 'arrow_s', 'parquet_s', 'total_s')})}, "
                 f"{h['python']['result']['records_per_s']:,.0f} rec/s; ratio per core {h['ratio_per_core']}×, score only {h['ratio_score_only']}×\n")
    if "scaling" in R:
        L.append(f"## scaling\n\n{json.dumps(R['scaling'])}\n")
    if "memory_flatness" in R:
        L.append(f"## memory flatness (etl run peak RSS)\n\n{json.dumps(R['memory_flatness'])}\n")
    if "calls" in R:
        L.append(f"## calls\n\n```json\n{json.dumps(R['calls'], indent=1)}\n```\n")
    if "cost" in R:
        L.append(f"## cost (estimate)\n\n```json\n{json.dumps(R['cost'], indent=1)}\n```\n")
    if "lake_year" in R:
        import lake_year

        L.append(lake_year.fmt(R["lake_year"]))
    if "delta_commits" in R:
        import lake_year

        L.append(lake_year.fmt_commits(R["delta_commits"]))
    if "lambda" in R:
        L.append(f"## lambda\n\n```json\n{json.dumps(R['lambda'], indent=1)}\n```\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    ap.add_argument("--etl", default=os.path.join(target, "cli", "etl"))
    ap.add_argument("--hotpath", default=os.path.join(target, "hotpath", "etl-bench-hotpath"))
    ap.add_argument("--target-dir", default=target)
    ap.add_argument("--python", default=sys.executable, help="interpreter for the reference (needs pandas, pyarrow, vaderSentiment)")
    ap.add_argument("--data", default=os.path.join(HERE, "data"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100k only, one round, no 1M")
    ap.add_argument("--no-1m", action="store_true")
    ap.add_argument("--only", default="", help="comma list of steps: compare,hotpath,scaling,memory,calls,lake,commits,lambda")
    ap.add_argument("--year-nights", type=int, default=365)
    ap.add_argument("--year-per-night", type=int, default=3000)
    ap.add_argument("--year-edits", type=int, default=40)
    ap.add_argument("--commit-nights", type=int, default=60)
    ap.add_argument("--baseline-etl", default=os.environ.get("BENCH_BASELINE_ETL"),
                    help="an `etl` built from earlier code, for the commits step's ratios (env BENCH_BASELINE_ETL)")
    ap.add_argument("--startup-runs", type=int, default=20)
    ap.add_argument("--compare-sizes", default="100k,1M", help="sizes for the python vs etl comparison")
    a = ap.parse_args()
    if a.quick:
        a.rounds, a.no_1m = 1, True
    steps = set(filter(None, a.only.split(","))) or {"compare", "hotpath", "scaling", "memory", "calls", "lake", "commits", "lambda"}
    os.makedirs(a.results, exist_ok=True)
    latest = os.path.join(a.results, "latest.json")
    R = {}
    if a.only and os.path.exists(latest):
        with open(latest) as f:
            R = json.load(f)  # refresh only the requested steps
    R["machine"] = machine()
    log(f"machine: {R['machine']}")
    sizes = ["10k", "100k"] + ([] if a.no_1m else ["1M"])
    data = gen_data(a.etl, a.data, sizes)
    lakes = os.path.join(a.data, "lakes")
    has_hot = os.path.exists(a.hotpath)

    def save():
        with open(latest, "w") as f:
            json.dump(R, f, indent=1)
        with open(os.path.join(a.results, "summary.md"), "w") as f:
            f.write(fmt_summary(R))

    if "compare" in steps:
        R.setdefault("compare", {})
        csizes = a.compare_sizes.split(",")
        if "100k" in csizes:
            log(f"== 100k: python reference vs etl run, {a.rounds} rounds alternating")
            R["compare"]["100k"] = compare(a.etl, a.python, data["100k"], SIZES["100k"], a.rounds, lakes)
            save()
        if not a.no_1m and "1M" in csizes:
            log("== 1M: python reference vs etl run, 1 round each")
            R["compare"]["1M"] = compare(a.etl, a.python, data["1M"], SIZES["1M"], 1, lakes)
            save()
    if "hotpath" in steps and has_hot:
        log("== hot path alone at 100k")
        R["hotpath"] = hotpath(a.hotpath, a.python, data["100k"], 3)
        save()
    if "scaling" in steps:
        log("== etl run --workers 1 vs 2 at 100k")
        R["scaling"] = scaling(a.etl, data["100k"], SIZES["100k"], lakes)
        save()
    if "memory" in steps:
        log("== memory flatness")
        mf = {}
        for s in sizes:
            r = run_etl(a.etl, data[s], os.path.join(lakes, "mem"), f"etl run {s}")
            mf[s] = {"peak_rss_mib": r["peak_rss_mib"], "wall_s": r["wall_s"], "records_per_s": round(SIZES[s] / r["wall_s"], 1)}
        R["memory_flatness"] = mf
        save()
    if "calls" in steps:
        log("== calls per 10,000 records")
        calls = {}
        for s in sizes:
            e = run_etl(a.etl, data[s], os.path.join(lakes, "calls"), f"etl run --json {s}")["summary"]
            n = SIZES[s]
            per = 10_000 / n
            c = {
                "etl_run_json": {"messages": e["produce"]["messages"], "send_calls": e["produce"]["send_calls"],
                                  "files_written": e["files_written"], "bytes_written": e["bytes_written"]},
                "per_10k": {"messages": round(e["produce"]["messages"] * per, 1), "s3_puts": round(e["files_written"] * per, 1),
                            "comprehend_calls_min": math.ceil(10_000 / 25)},
            }
            if has_hot:
                h = measure([a.hotpath, "--input", data[s]], f"design counts {s}")
                d = json.loads(h["stdout"].strip().splitlines()[-1])
                c["design"] = {k: d[k] for k in (
                    "records", "messages", "message_body_bytes", "records_per_message", "message_bytes_max",
                    "sqs_send_message_batch_calls", "sqs_send_billed_requests", "sqs_message_64k_chunks",
                    "comprehend_batch_calls", "comprehend_units", "text_chars", "files", "parquet_bytes",
                    "dynamodb_item_bytes_est", "input_bytes")}
                c["per_10k"].update({
                    "sqs_send_message_batch_calls": round(d["sqs_send_message_batch_calls"] * per, 1),
                    "sqs_billed_send_requests": round(d["sqs_send_billed_requests"] * per, 1),
                    "comprehend_batch_calls": round(d["comprehend_batch_calls"] * per, 1),
                    "comprehend_units": round(d["comprehend_units"] * per, 1),
                    "dynamodb_scan_pages_1mb": round(d["dynamodb_item_bytes_est"] * per / 1_048_576, 2),
                    "dynamodb_rru": round(d["dynamodb_item_bytes_est"] * per / 4096 * 0.5, 1),
                })
            calls[s] = c
        R["calls"] = calls
        save()
        big = "1M" if "1M" in calls else "100k"
        if has_hot and "design" in calls[big] and "hotpath" in R:
            rs_rate = R["hotpath"]["rust"]["result"]["consume_records_per_s"]
            py_rate = R["hotpath"]["python"]["result"]["records_per_cpu_s"]
            R["cost"] = {"based_on": big, **cost_model(calls[big]["design"], rs_rate, py_rate)}
            save()
    if "lake" in steps:
        import lake_year

        log(f"== a year of nightly runs: {a.year_nights} nights, hive and delta")
        R["lake_year"] = lake_year.run(a.etl, a.data, a.year_nights, a.year_per_night, a.year_edits, rounds=3, nice=NICE, log=log)
        save()
    if "commits" in steps:
        import lake_year

        log(f"== Delta commits: {a.commit_nights} nights" + (f", against {a.baseline_etl}" if a.baseline_etl else ""))
        R["delta_commits"] = lake_year.delta_commits(a.etl, a.data, a.commit_nights, baseline_etl=a.baseline_etl, nice=NICE, log=log)
        save()
    if "lambda" in steps:
        log("== lambda packages and start-up")
        R["lambda"] = lambda_section(a.target_dir, a.python, a.hotpath if has_hot else None, data["10k"], a.startup_runs, a.results)
        save()
    save()
    print(fmt_summary(R))


if __name__ == "__main__":
    main()
