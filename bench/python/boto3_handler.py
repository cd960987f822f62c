"""A minimal Python Lambda doing at init what the Rust binaries do: create the
same six AWS clients (DynamoDB, SQS, S3, Comprehend, Glue, Athena), then ask
the Runtime API for the first invocation. `bench/lambda_startup.py` times
process start → that first GET, exactly as it times the Rust bootstrap.

The Lambda Python runtime would import this module (init) and then poll
`/runtime/invocation/next`; the loop at the bottom stands in for it.
"""

import os
import urllib.request

import boto3

session = boto3.session.Session()
dynamodb = session.client("dynamodb")
sqs = session.client("sqs")
s3 = session.client("s3")
comprehend = session.client("comprehend")
glue = session.client("glue")
athena = session.client("athena")

if __name__ == "__main__":
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    with urllib.request.urlopen(f"http://{api}/2018-06-01/runtime/invocation/next") as r:
        r.read()
