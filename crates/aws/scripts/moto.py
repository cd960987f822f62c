#!/usr/bin/env python3
"""Drive the Lambda binaries against moto (see crates/aws/README.md).

  moto.py setup [N]     create the source/state tables, queue, bucket; put N sample items
  moto.py sqs-event     receive what the producer sent and print an SQS Lambda event
                        with it, plus one malformed message

Uses boto3 (installed with moto in .venv) and AWS_ENDPOINT_URL.
"""
import hashlib
import json
import os
import sys

import boto3

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
REGION = os.environ.get("AWS_REGION", "us-east-1")
KW = dict(endpoint_url=ENDPOINT, region_name=REGION,
          aws_access_key_id="testing", aws_secret_access_key="testing")
SOURCE, STATE, QUEUE, BUCKET = "posts", "etl-state", "sentiment-work", "sentiment-lake"
TEXTS = ["I love this, it is wonderful!", "This is terrible.", "It arrived on Tuesday.",
         "Great service but awful food.", "Not bad at all :)"]


def table(ddb, name, key):
    if name in ddb.list_tables()["TableNames"]:
        return
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": key, "KeyType": "HASH"}])


def setup(n):
    ddb = boto3.client("dynamodb", **KW)
    table(ddb, SOURCE, "id")
    table(ddb, STATE, "pk")
    url = boto3.client("sqs", **KW).create_queue(QueueName=QUEUE)["QueueUrl"]
    boto3.client("s3", **KW).create_bucket(Bucket=BUCKET)
    for i in range(n):
        ddb.put_item(TableName=SOURCE, Item={
            "id": {"S": f"post-{i:04d}"},
            "text": {"S": f"{TEXTS[i % len(TEXTS)]} (#{i})"},
            "created_at": {"N": str(1714550400 + i * 3600)},
        })
    print(f"QUEUE_URL={url}")


def sqs_event():
    sqs = boto3.client("sqs", **KW)
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody='{"v":1,"records":"not a message"}')
    records = []
    for _ in range(20):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                  AttributeNames=["All"]).get("Messages", [])
        if not got:
            break
        for m in got:
            records.append({
                "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                "attributes": m.get("Attributes", {}), "messageAttributes": {},
                "md5OfBody": hashlib.md5(m["Body"].encode()).hexdigest(), "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:{QUEUE}", "awsRegion": REGION,
            })
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    json.dump({"Records": records}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "setup":
        setup(int(sys.argv[2]) if len(sys.argv) > 2 else 50)
    elif cmd == "sqs-event":
        sqs_event()
    else:
        sys.exit(__doc__)
