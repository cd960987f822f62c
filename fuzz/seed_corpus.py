#!/usr/bin/env python3
"""Write seed inputs into fuzz/corpus/<target>/ (idempotent; names are content hashes).

Seeds: the event fixtures in events/, posts shaped like `etl gen` output
(ids, texts, RFC 3339 and epoch timestamps, edits, pass-through attributes),
valid queue messages built with the real content-id rule, CSV files and
scheduler inputs. Structured targets (message_roundtrip, dynamodb_item)
start from libFuzzer's own inputs.
"""
import hashlib
import json
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

WORDS = ["great", "terrible", "love", "hate", "okay", "not", "very", "good", "bad", "meh",
         "amazing", "awful", "the", "service", "coffee", "update", "release", "!!", ":)", "😀",
         "SUPER", "kind of", "but", "never", "didn't", "fine", "café", "naïve", "LOL"]
AUTHORS = ["ann", "bob", "cem", "dia"]


def put(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ts(rng):
    s = rng.randrange(1_600_000_000, 1_800_000_000)
    kind = rng.randrange(6)
    if kind == 0:
        return s
    if kind == 1:
        return s * 1000 + rng.randrange(1000)
    if kind == 2:
        return str(s)
    if kind == 3:
        return s + rng.random()
    import datetime as dt
    t = dt.datetime.fromtimestamp(s, dt.timezone.utc)
    if kind == 4:
        return t.strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.astimezone(dt.timezone(dt.timedelta(hours=rng.choice([-8, 2, 5])))).isoformat(
        timespec="microseconds")


def post(rng, i):
    o = {"id": rng.choice([f"post-{i:04}", i, f"review-{i:x}"]),
         "text": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 12))),
         "created_at": ts(rng)}
    if rng.random() < 0.3:
        o["updated_at"] = ts(rng)
    if rng.random() < 0.5:
        o["author"] = rng.choice(AUTHORS)
    if rng.random() < 0.2:
        o["lang"] = "en"
    return o


def micros(v):
    """A timestamp value as the message's RFC 3339 with microseconds (UTC)."""
    import datetime as dt
    if isinstance(v, str) and not v.isdigit():
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    else:
        n = float(v)
        t = dt.datetime.fromtimestamp(n / 1000 if abs(n) >= 1e11 else n, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def message(records):
    recs = []
    for r in records:
        m = {"id": str(r["id"]), "text": r["text"], "created_at": micros(r["created_at"]),
             "updated_at": micros(r.get("updated_at", r["created_at"]))}
        recs.append(m)
    recs.sort(key=lambda r: (r["id"].encode(), r["updated_at"]))
    enc = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in recs]
    h = hashlib.sha256(b"etl-message-v1\n")
    for e in enc:
        b = e.encode("utf-8")
        h.update(struct.pack("<Q", len(b)))
        h.update(b)
    return '{"v":1,"content_id":"%s","records":[%s]}' % (h.hexdigest(), ",".join(enc))


def main():
    rng = random.Random(42)
    posts = [post(rng, i) for i in range(200)]
    lines = [json.dumps(p, ensure_ascii=False) for p in posts]

    # record_parse: a field-map selector byte, then one JSON value.
    for i, line in enumerate(lines[:40]):
        put("record_parse", bytes([i % 3]) + line.encode())
    put("record_parse", b'\x02{"post_id":7,"body":"nice","ts":"2024-01-01T00:00:00Z"}')

    # source_jsonl: small files, with the odd bad line, CRLF, BOM, blank lines.
    for k in range(20):
        chunk = lines[k * 5:(k + 1) * 5]
        if k % 4 == 1:
            chunk.insert(2, "not json")
        if k % 4 == 2:
            chunk.insert(1, "")
        text = ("\r\n" if k % 5 == 3 else "\n").join(chunk)
        data = text.encode()
        if k % 7 == 0:
            data = b"\xef\xbb\xbf" + data
        put("source_jsonl", data)

    # source_csv: header + rows, quoting, embedded newlines, short rows.
    def cell(v):
        s = str(v)
        return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\n\r') else s
    for k in range(12):
        rows = ["id,text,created_at,updated_at,author"]
        for p in posts[100 + k * 4:100 + (k + 1) * 4]:
            rows.append(",".join(cell(p.get(f, "")) for f in
                                 ["id", "text", "created_at", "updated_at", "author"]))
        if k % 3 == 0:
            rows.append('x9,"multi\nline, ""quoted""",1700000000,,ann')
        if k % 3 == 1:
            rows.append("short,row")
        put("source_csv", "\n".join(rows) + "\n")

    # message_decode: valid messages (one or several records), and the fixtures' bodies.
    for k in range(30):
        n = 1 + k % 5
        put("message_decode", message(posts[k * 5:k * 5 + n]))
    bodies = []
    for ev in ["sqs-batch.json", "sqs-batch-poison.json"]:
        with open(os.path.join(ROOT, "events", ev), encoding="utf-8") as f:
            raw = f.read()
        put("consumer_sqs_event", raw)
        for r in json.loads(raw)["Records"]:
            put("message_decode", r["body"])
            bodies.append(r)

    # consumer_sqs_event: compact events with generated messages.
    for k in range(10):
        recs = [{"messageId": f"m-{k}-{j}", "receiptHandle": "h", "body": message(posts[k * 7 + j:k * 7 + j + 2]),
                 "eventSource": "aws:sqs"} for j in range(1 + k % 3)]
        if k == 4:
            recs.append({"messageId": "bad", "body": '{"v":1}'})
        if k == 7:
            recs.append({"body": message(posts[:1])})
        put("consumer_sqs_event", json.dumps({"Records": recs}))

    # producer_event: fixtures, scheduler inputs and a stored run checkpoint.
    for ev in ["scheduled-event.json", "scheduler-backfill.json"]:
        with open(os.path.join(ROOT, "events", ev), encoding="utf-8") as f:
            put("producer_event", f.read())
    for s in ['{}', 'null', '{"mode":"incremental"}', '{"mode":"resume"}', '{"mode":"full"}',
              '{"since":"2024-05-01T00:00:00+02:00"}', '{"mode":"full","since":"2024-05-01T00:00:00Z"}',
              '{"detail-type":"Object Created","source":"aws.s3","detail":{}}']:
        put("producer_event", s)
    cp = {"run_id": "req-1", "spec": {"mode": "since", "since": "2024-05-01T00:00:00Z"},
          "base": {"at": "2024-05-01T00:00:00Z", "ids_at": ["a", "b"]},
          "observed": {"at": None},
          "scan": {"segments": [{"state": "start"}, {"state": "after", "key": {"id": {"S": "k"}}, "pages": 2},
                                {"state": "done"}]},
          "started_at": "2024-05-02T02:00:00Z", "invocations": 1}
    put("producer_event", json.dumps(cp))
    cp["spec"] = {"mode": "full"}
    put("producer_event", json.dumps(cp))


if __name__ == "__main__":
    sys.exit(main())
