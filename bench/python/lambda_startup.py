#!/usr/bin/env python3
"""Lambda start-up and consumer-batch measurements against a local Runtime API.

A tiny HTTP server plays the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`).
Start-up is the time from just before the process is spawned to the moment
its first `GET /2018-06-01/runtime/invocation/next` arrives: everything a
cold start runs inside the function (exec, config, logging, the six AWS
clients) and nothing of Lambda's own (sandbox, code download).

A second tiny server plays AWS (`AWS_ENDPOINT_URL`) for the consumer batch
measurement: S3 PutObject answers 200 and Glue answers GetTable /
BatchCreatePartition, so the consumer binary does its real work (decode,
VADER, Arrow, Parquet, PutObject over HTTP) and its peak RSS (VmHWM) can be
read once it has posted its response.

    python lambda_startup.py startup --bin target/release/consumer --kind consumer --runs 20
    python lambda_startup.py startup --bin target/release/consumer --kind consumer --env TABLE_FORMAT=delta
    python lambda_startup.py startup-python --runs 20
    python lambda_startup.py consumer-batch --bin target/release/consumer --event ev.json
"""

import argparse
import http.server
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a killed client resetting its connection is expected here


class _Quiet(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


class RuntimeApi:
    """The Lambda Runtime API: records the first `next`, serves at most one event."""

    def __init__(self, event=None):
        self.event = event
        self.first_next = None
        self.served_at = None
        self.response_at = None
        self.response = None
        self.next_seen = threading.Event()
        self.done = threading.Event()
        api = self

        class H(_Quiet):
            def do_GET(self):
                if self.path.endswith("/runtime/invocation/next"):
                    now = time.perf_counter()
                    if api.first_next is None:
                        api.first_next = now
                        api.next_seen.set()
                        if api.event is not None:
                            api.served_at = time.perf_counter()
                            deadline = str(int((time.time() + 300) * 1000))
                            self._send(
                                200,
                                api.event,
                                {
                                    "Content-Type": "application/json",
                                    "Lambda-Runtime-Aws-Request-Id": "bench-request-1",
                                    "Lambda-Runtime-Deadline-Ms": deadline,
                                    "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:bench",
                                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                                },
                            )
                            return
                    # Hold the poll open (like Lambda between invocations) until shutdown.
                    self.server_done_wait()
                    return
                self._send(404)

            def server_done_wait(self):
                api.done.wait(600)
                try:
                    self._send(410)
                except OSError:
                    pass

            def do_POST(self):
                body = self._body()
                if "/response" in self.path or "/error" in self.path:
                    api.response_at = time.perf_counter()
                    api.response = (self.path, body)
                    self._send(202, b'{"status":"OK"}', {"Content-Type": "application/json"})
                    api.done.set()
                    return
                self._send(202, b"{}", {"Content-Type": "application/json"})

        self.server = _Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


class FakeAws:
    """Just enough of S3 and Glue for the consumer: PutObject, GetTable, BatchCreatePartition."""

    def __init__(self):
        self.puts = 0
        self.put_bytes = 0
        self.calls = {}
        aws = self

        class H(_Quiet):
            def do_PUT(self):
                body = self._body()
                aws.puts += 1
                aws.put_bytes += int(self.headers.get("x-amz-decoded-content-length") or len(body))
                self._send(200, b"", {"ETag": '"0"'})

            def do_POST(self):
                self._body()
                target = self.headers.get("X-Amz-Target", "?")
                aws.calls[target] = aws.calls.get(target, 0) + 1
                if target.endswith(".GetTable"):
                    out = {"Table": {"Name": "sentiment", "DatabaseName": "bench"}}
                elif target.endswith(".BatchCreatePartition"):
                    out = {"Errors": []}
                else:
                    out = {}
                self._send(200, json.dumps(out).encode(), {"Content-Type": "application/x-amz-json-1.1"})

            do_GET = do_POST

        self.server = _Server(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def lambda_env(runtime_port, kind, endpoint="http://127.0.0.1:1"):
    """The environment Lambda gives a function, with dummy values."""
    home = tempfile.mkdtemp(prefix="bench-lambda-home-")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{runtime_port}",
        "AWS_LAMBDA_FUNCTION_NAME": f"bench-{kind}",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/bench-{kind}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0",
        "AWS_LAMBDA_LOG_LEVEL": "WARN",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIDBENCHFAKE",
        "AWS_SECRET_ACCESS_KEY": "benchfakesecret",
        "AWS_SESSION_TOKEN": "benchfaketoken",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.path.join(home, "none"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # producer
        "SOURCE_TABLE": "bench-posts",
        "STATE_TABLE": "bench-state",
        "QUEUE_URL": "http://127.0.0.1:1/123456789012/bench-work",
        # consumer
        "OUTPUT_BUCKET": "bench-lake",
        "OUTPUT_PREFIX": "",
        "GLUE_DATABASE": "bench",
        "GLUE_TABLE": "sentiment",
        "SENTIMENT_ENGINE": "vader",
        "LANGUAGE": "en",
    }
    return env


def _peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _stop(p):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def time_to_first_next(argv, kind, nice=10, timeout=30.0, extra_env=None):
    """Seconds from spawn to the first GET /next, and the RSS at that point (KiB)."""
    api = RuntimeApi()
    try:
        env = lambda_env(api.port, kind)
        env.update(extra_env or {})
        cmd = (["nice", "-n", str(nice)] if nice else []) + argv
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not api.next_seen.wait(timeout):
            _stop(p)
            err = p.stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{argv[0]}: no GET /next within {timeout}s; stderr: {err}")
        dt = api.first_next - t0
        rss = _peak_rss_kib(p.pid)
        _stop(p)
        return dt, rss
    finally:
        api.close()


def startup_stats(argv, kind, runs, nice=10, extra_env=None):
    times, rss = [], []
    time_to_first_next(argv, kind, nice, extra_env=extra_env)  # warm the page cache; not counted
    for _ in range(runs):
        dt, r = time_to_first_next(argv, kind, nice, extra_env=extra_env)
        times.append(dt * 1000)
        if r:
            rss.append(r)
    times.sort()
    return {
        "cmd": " ".join(argv),
        "runs": runs,
        "min_ms": round(times[0], 2),
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))], 2),
        "max_ms": round(times[-1], 2),
        "rss_at_first_next_kib_median": int(statistics.median(rss)) if rss else None,
    }


def python_argv(python=None):
    return [python or sys.executable, os.path.join(HERE, "boto3_handler.py")]


def consumer_batch(binary, event_path, nice=10, timeout=600.0, concurrency=None, endpoint=None, extra_env=None):
    """Run the consumer binary on one SQS event; returns peak RSS and timings.
    Against `FakeAws`, or against `endpoint` (a moto server) when given."""
    with open(event_path, "rb") as f:
        event = f.read()
    aws = None if endpoint else FakeAws()
    api = RuntimeApi(event)
    try:
        env = lambda_env(api.port, "consumer", endpoint=endpoint or f"http://127.0.0.1:{aws.port}")
        env.update(extra_env or {})
        if concurrency:
            env["MESSAGE_CONCURRENCY"] = str(concurrency)
        cmd = (["nice", "-n", str(nice)] if nice else []) + [binary]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not api.done.wait(timeout):
            _stop(p)
            raise RuntimeError("consumer gave no response; stderr: " + p.stderr.read().decode(errors="replace")[-2000:])
        rss = _peak_rss_kib(p.pid)
        cpu = None
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
                tck = os.sysconf("SC_CLK_TCK")
                cpu = (int(fields[11]) + int(fields[12])) / tck
        except OSError:
            pass
        _stop(p)
        path, body = api.response
        resp = json.loads(body or b"{}")
        records = sum(len(json.loads(r["body"])["records"]) for r in json.loads(event)["Records"])
        return {
            "binary": binary,
            "event_bytes": len(event),
            "messages": len(json.loads(event)["Records"]),
            "records": records,
            "response_path": path.rsplit("/", 1)[-1],
            "batch_item_failures": len(resp.get("batchItemFailures", [])),
            "init_ms": round((api.first_next - t0) * 1000, 2),
            "invoke_ms": round((api.response_at - api.served_at) * 1000, 2),
            "cpu_s": cpu,
            "peak_rss_kib": rss,
            "peak_rss_mib": round(rss / 1024, 1) if rss else None,
            "s3_puts": aws.puts if aws else None,
            "s3_put_bytes": aws.put_bytes if aws else None,
            "glue_calls": aws.calls if aws else None,
        }
    finally:
        api.close()
        if aws:
            aws.close()


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consumer_batches_on_moto(binary, event_path, moto_server, rounds=2, nice=10):
    """The consumer on one SQS event against a moto server, per table format:
    `rounds` fresh processes in turn on the same lake (the first creates the
    table; later ones open it, as a new container does), Hive then Delta, each
    in its own bucket. Moto (single-threaded Python) dominates the wall time,
    so compare the formats with each other, not with real S3."""
    import urllib.request

    port = _free_port()
    server = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"moto server on port {port} did not start")

        def glue(target, body):
            req = urllib.request.Request(endpoint + "/", data=json.dumps(body).encode(), method="POST",
                                         headers={"X-Amz-Target": f"AWSGlue.{target}",
                                                  "Content-Type": "application/x-amz-json-1.1",
                                                  "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCHFAKE/20260101/us-east-1/glue/aws4_request"})
            urllib.request.urlopen(req, timeout=10).read()

        glue("CreateDatabase", {"DatabaseInput": {"Name": "bench"}})
        out = {}
        for fmt in ("hive", "delta"):
            bucket = f"bench-lake-{fmt}"
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"), timeout=10).read()
            env = {"TABLE_FORMAT": fmt, "OUTPUT_BUCKET": bucket, "GLUE_TABLE": f"sentiment_{fmt}"}
            out[fmt] = [consumer_batch(binary, event_path, nice=nice, endpoint=endpoint, extra_env=env) for _ in range(rounds)]
        return out
    finally:
        server.terminate()
        server.wait(10)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("startup")
    s.add_argument("--bin", required=True)
    s.add_argument("--kind", choices=["producer", "consumer"], required=True)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra environment (repeatable)")
    s = sub.add_parser("startup-python")
    s.add_argument("--python", default=sys.executable)
    s.add_argument("--runs", type=int, default=20)
    s = sub.add_parser("consumer-batch")
    s.add_argument("--bin", required=True)
    s.add_argument("--event", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "startup":
        out = startup_stats([a.bin], a.kind, a.runs, extra_env=dict(kv.split("=", 1) for kv in a.env))
    elif a.cmd == "startup-python":
        out = startup_stats(python_argv(a.python), "consumer", a.runs)
    else:
        out = consumer_batch(a.bin, a.event)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
