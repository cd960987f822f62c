#!/usr/bin/env python3
"""Several nights through the real `producer` and `consumer` binaries.

The Docker-free stand-in for `sam local invoke` on a schedule: a moto server on
127.0.0.1, `cargo lambda watch` serving both functions, and per night a
scheduled producer invocation, then the work queue handed to the consumer as
SQS events (the event source mapping's part: receive, invoke, delete what was
not reported failed). After every night the lake in S3 is read back with
pyarrow and its multiset of (id, updated_at, sha256(text), dt) must equal every
version written to the source so far.

Data is live: timestamps relative to now, a bulk load sharing one updated_at,
updates, late writes inside the lookback, a record dated a day ahead, a
same-key version with other text, texts with U+FFFE/U+FFFF and ids with '/',
'..', spaces and 200 characters.

    python tools/lambda_nights.py --moto .venv/bin/moto_server [--bulk 20000]

Exit 0 when every night holds; 1 with the first difference otherwise.
"""

import argparse
import collections
import datetime as dt
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import boto3
import pyarrow.parquet as pq

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, seconds: int = 600) -> None:
    for _ in range(seconds * 4):
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.25).close()
            return
        except OSError:
            time.sleep(0.25)
    sys.exit(f"{what} did not open port {port}")


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now() -> dt.datetime:
    t = dt.datetime.now(dt.timezone.utc)
    return t.replace(microsecond=(t.microsecond // 1000) * 1000)


class Source:
    def __init__(self, ddb, table: str):
        self.ddb, self.table, self.written = ddb, table, []

    def put(self, rows):
        for i in range(0, len(rows), 25):
            reqs = [
                {"PutRequest": {"Item": {
                    "id": {"S": r["id"]}, "text": {"S": r["text"]},
                    "created_at": {"N": str(round(r["created_at"].timestamp() * 1000))},
                    "updated_at": {"S": iso(r["updated_at"])},
                }}}
                for r in rows[i:i + 25]
            ]
            for _ in range(20):
                out = self.ddb.batch_write_item(RequestItems={self.table: reqs})
                reqs = out.get("UnprocessedItems", {}).get(self.table, [])
                if not reqs:
                    break
        self.written.extend(rows)

    def versions(self):
        return collections.Counter(
            (r["id"], round(r["updated_at"].timestamp() * 1_000_000),
             hashlib.sha256(r["text"].encode()).hexdigest(),
             r["created_at"].astimezone(dt.timezone.utc).strftime("%Y-%m-%d"))
            for r in self.written
        )


def lake_versions(s3, bucket: str):
    got = collections.Counter()
    token = None
    for _ in range(10_000):
        kw = {"Bucket": bucket, **({"ContinuationToken": token} if token else {})}
        page = s3.list_objects_v2(**kw)
        for o in page.get("Contents", []):
            key = o["Key"]
            part = next(p for p in key.split("/") if p.startswith("dt="))[3:]
            t = pq.read_table(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
            for row in t.select(["id", "updated_at", "text"]).to_pylist():
                us = round(row["updated_at"].timestamp() * 1_000_000)
                got[(row["id"], us, hashlib.sha256(row["text"].encode()).hexdigest(), part)] += 1
        token = page.get("NextContinuationToken")
        if not token:
            break
    return got


def invoke(name: str, port: int, payload: dict) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(payload, f)
    out = subprocess.run(
        ["cargo", "lambda", "invoke", name, "--invoke-address", "127.0.0.1",
         "--invoke-port", str(port), "--data-file", f.name, "--output-format", "json"],
        capture_output=True, text=True, timeout=900,
    )
    os.unlink(f.name)
    if out.returncode != 0:
        sys.exit(f"{name} invocation failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout)


def drain(sqs, queue_url: str, queue_arn: str, port: int) -> int:
    delivered, empty = 0, 0
    for _ in range(10_000):
        msgs = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                   AttributeNames=["All"], VisibilityTimeout=300).get("Messages", [])
        if not msgs:
            empty += 1
            if empty == 2:
                return delivered
            continue
        event = {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn, "awsRegion": REGION,
        } for m in msgs]}
        failed = {f["itemIdentifier"] for f in invoke("consumer", port, event).get("batchItemFailures", [])}
        if failed:
            sys.exit(f"consumer reported failures: {failed}")
        for m in msgs:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        delivered += len(msgs)
    sys.exit("queue never drained")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moto", required=True)
    ap.add_argument("--bulk", type=int, default=20_000)
    args = ap.parse_args()

    moto_port, lambda_port = free_port(), free_port()
    moto = subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watch = None
    try:
        wait_port(moto_port, moto, "moto_server", 60)
        endpoint = f"http://127.0.0.1:{moto_port}"
        kw = dict(endpoint_url=endpoint, region_name=REGION,
                  aws_access_key_id="test", aws_secret_access_key="test")
        ddb, sqs, s3 = boto3.client("dynamodb", **kw), boto3.client("sqs", **kw), boto3.client("s3", **kw)
        for t in ("posts", "state"):
            ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "id" if t == "posts" else "pk", "AttributeType": "S"}],
                             KeySchema=[{"AttributeName": "id" if t == "posts" else "pk", "KeyType": "HASH"}])
        dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        work = sqs.create_queue(QueueName="work", Attributes={
            "VisibilityTimeout": "300",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})})["QueueUrl"]
        work_arn = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.create_bucket(Bucket="lake")

        env = {
            "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "SOURCE_TABLE": "posts", "STATE_TABLE": "state", "QUEUE_URL": work,
            "OUTPUT_BUCKET": "lake", "OUTPUT_PREFIX": "lake", "GLUE_DATABASE": "nights",
            "GLUE_TABLE": "sentiment", "SENTIMENT_ENGINE": "vader",
            "DEAD_LETTER_QUEUE_URL": dlq, "LOOKBACK_SECONDS": "3600",
            # Far below the bulk load, so the ledger lives in sorted spill files.
            "LEDGER_MEMORY_VERSIONS": "1000",
        }
        env_file = tempfile.NamedTemporaryFile("w", suffix=".env", delete=False)
        env_file.write("".join(f"{k}={v}\n" for k, v in env.items()))
        env_file.close()
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--ignore-changes", "--invoke-address", "127.0.0.1",
             "--invoke-port", str(lambda_port), "--env-file", env_file.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(lambda_port, watch, "cargo lambda watch")

        src = Source(ddb, "posts")
        scheduled = json.load(open("events/scheduled-event.json"))

        def night(n: int, expect_sent: int) -> None:
            summary = invoke("producer", lambda_port, scheduled)
            if summary.get("status") != "complete" or summary.get("sent_records") != expect_sent:
                sys.exit(f"night {n}: expected complete with {expect_sent} sent, got {summary}")
            drain(sqs, work, work_arn, lambda_port)
            want, got = src.versions(), lake_versions(s3, "lake")
            if want != got:
                missing, extra = want - got, got - want
                sys.exit(f"night {n}: lake differs: missing {list(missing.items())[:5]} "
                         f"({sum(missing.values())}), extra {list(extra.items())[:5]} ({sum(extra.values())})")
            print(f"night {n}: sent {expect_sent}, lake holds {sum(got.values())} rows = "
                  f"{len(want)} versions once, ledger {summary.get('ledger_versions')}", flush=True)

        t = now()
        rows = [{"id": f"post-{i:05}", "text": f"post {i} is {'great' if i % 3 else 'awful'}",
                 "created_at": t - dt.timedelta(seconds=60 + 97 * i), "updated_at": t - dt.timedelta(seconds=60 + 97 * i)}
                for i in range(2_000)]
        rows += [{"id": i, "text": f"odd id {n}", "created_at": t, "updated_at": t - dt.timedelta(seconds=5)}
                 for n, i in enumerate(["a/b", "../..", "with spaces", "x" * 200])]
        rows += [{"id": f"hostile-{n}", "text": s, "created_at": t, "updated_at": t - dt.timedelta(seconds=5)}
                 for n, s in enumerate(["nc \ufffe \uffff", "astral \U0001F600 \U0010FFFF ctl \x01\x1f"])]
        bulk_at = t - dt.timedelta(minutes=10)
        rows += [{"id": f"bulk/{i:06}", "text": f"imported {i}", "created_at": bulk_at - dt.timedelta(days=1),
                  "updated_at": bulk_at} for i in range(args.bulk)]
        rows.append({"id": "ahead", "text": "clock a day ahead", "created_at": t, "updated_at": t + dt.timedelta(days=1)})
        src.put(rows)
        night(1, len(rows))

        t = now()
        more = [{"id": f"post-{i:05}", "text": f"post {i} edited", "created_at": r["created_at"], "updated_at": t}
                for i, r in enumerate(rows[:2_000]) if i % 10 == 0]
        more += [{"id": f"late-{i}", "text": f"late {i}", "created_at": t - dt.timedelta(hours=3),
                  "updated_at": t - dt.timedelta(minutes=40)} for i in range(30)]
        src.put(more)
        night(2, len(more))
        night(3, 0)
        late0 = next(r for r in src.written if r["id"] == "late-0")
        src.put([{**late0, "text": "late 0, rewritten with the same updated_at"}])
        night(4, 1)
        print("every night complete; every version in S3 exactly once")
        return 0
    finally:
        if watch is not None:
            try:
                os.killpg(watch.pid, 15)
            except ProcessLookupError:
                pass
        moto.terminate()


if __name__ == "__main__":
    sys.exit(main())
