"""Least privilege, checked against the code: each function's role allows
exactly the AWS API operations its Rust code calls (plus what AWS does with
the caller's credentials on their behalf), on its own resources, and nothing
else. A new SDK call without a permission fails here, not in the account.

Permissions live in two inline policies per role:
* the code policy (named after the function) - compared with the calls found
  by ``rust_calls``;
* ``lambda-platform`` - what the Lambda service does with the role (logs,
  polling the event source, the async dead-letter queue), checked separately.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import rust_calls as rc
from helpers import ROOT, as_list, refs, role_statements

PSEUDO = {"AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::NoValue"}

# What Lambda sends with the role when Tracing is Active (conditional on UseTracing).
TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


@dataclass
class FunctionSpec:
    function: str  # logical id
    crate: str  # the binary's crate
    role: str
    code_policy: str
    # (file, fn) in crates/aws that the binary links but never runs -> why.
    # Reviewed by hand; a stale entry (no such call site any more) fails.
    unreached: dict[tuple[str, str], str] = field(default_factory=dict)
    # SDK operation -> actions AWS performs with the caller's credentials.
    implied: dict[str, set[str]] = field(default_factory=dict)
    platform: set[str] = field(default_factory=set)
    # Actions granted ahead of the code that needs them (work on another
    # branch) -> why. An entry the code already needs is stale and fails.
    pending: dict[str, str] = field(default_factory=dict)
    # Actions delta-rs's object store performs (HTTP, not SDK calls, so the
    # extractor cannot see them) -> why. Granted only under UseDelta.
    object_store: dict[str, str] = field(default_factory=dict)


PRODUCER = FunctionSpec(
    function="ProducerFunction",
    crate="crates/producer",
    role="ProducerRole",
    code_policy="producer",
    unreached={
        ("crates/aws/src/sqs.rs", "receive"): "WorkQueue::receive; the consumer gets messages from the event source mapping",
        ("crates/aws/src/sqs.rs", "ack"): "WorkQueue::ack; Lambda deletes what the consumer does not report as failed",
        ("crates/aws/src/sqs.rs", "release"): "WorkQueue::release; used by the local runner, not by produce()",
    },
    implied={
        # A source table with a customer managed key (SourceTableKmsKeyArn):
        # DynamoDB decrypts the table key with the caller's permission. The
        # grant is conditional on the parameter (test_kms_grant_is_conditional...).
        "dynamodb:Scan": {"kms:Decrypt"},
    },
    platform={"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage", *TRACING},
)

CONSUMER = FunctionSpec(
    function="ConsumerFunction",
    crate="crates/consumer",
    role="ConsumerRole",
    code_policy="consumer",
    unreached={
        ("crates/aws/src/s3.rs", "get"): "S3Sink::get reads objects back in tests; the consumer only writes",
        ("crates/aws/src/sqs.rs", "receive"): "the consumer re-enqueues with SqsQueue::send; the event source mapping receives",
        ("crates/aws/src/sqs.rs", "ack"): "Lambda deletes what the consumer does not report as failed",
        ("crates/aws/src/sqs.rs", "release"): "WorkQueue::release; used by the local runner only",
        ("crates/aws/src/athena.rs", "results"): "QueryEngine::query; the consumer runs only the view DDL, whose results it never reads",
        ("crates/aws/src/athena.rs", "query_with_stats"): "the operator's `etl query --athena`; the consumer never calls it",
        ("crates/aws/src/athena.rs", "run"): (
            "the view DDL runs only when ATHENA_WORKGROUP is set, and the template sets none: "
            "the views are Glue VIRTUAL_VIEW tables created at deploy time"
        ),
    },
    object_store={
        "s3:GetObject": "TABLE_FORMAT=delta: reading the table's log and checkpoints (crates/delta)",
        "s3:ListBucket": "TABLE_FORMAT=delta: listing _delta_log for the latest version (crates/delta)",
    },
    platform={
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        *TRACING,
    },
)

SPECS = [PRODUCER, CONSUMER]

# Logical ids (and parameters) a statement granting the action may name.
ALLOWED_RESOURCES: dict[str, set[str]] = {
    "dynamodb:Scan": {"SourceTable", "SourceTableName", "StateTable"},
    "dynamodb:GetItem": {"StateTable"},
    "dynamodb:PutItem": {"StateTable"},
    "dynamodb:UpdateItem": {"StateTable"},
    "dynamodb:DeleteItem": {"StateTable"},
    "sqs:SendMessage": {"WorkQueue", "WorkDeadLetterQueue"},
    "kms:Decrypt": {"SourceTableKmsKeyArn"},
    "s3:PutObject": {"LakeBucket", "OutputPrefix", "AthenaResultsBucket"},
    "s3:AbortMultipartUpload": {"LakeBucket", "OutputPrefix", "AthenaResultsBucket"},
    "s3:ListMultipartUploadParts": {"LakeBucket", "OutputPrefix", "AthenaResultsBucket"},
    "s3:GetObject": {"AthenaResultsBucket", "LakeBucket", "OutputPrefix"},
    "s3:DeleteObject": {"LakeBucket", "OutputPrefix"},
    "s3:GetBucketLocation": {"AthenaResultsBucket"},
    "s3:ListBucket": {"AthenaResultsBucket", "LakeBucket", "OutputPrefix"},
    "s3:ListBucketMultipartUploads": {"AthenaResultsBucket"},
    "glue:*": {"GlueDatabase", "SentimentTable"},
    "athena:*": {"AthenaWorkGroup"},
}
# Services whose operations cannot be scoped to a resource.
UNSCOPED_SERVICES = {"comprehend", "xray"}


def allowed_resources(action: str) -> set[str]:
    return ALLOWED_RESOURCES.get(action) or ALLOWED_RESOURCES.get(action.split(":")[0] + ":*", set())


# ------------------------------------------------------------------- analysis


@pytest.fixture(scope="session")
def sdk_ops() -> dict[str, dict[str, str]]:
    try:
        dirs = rc.sdk_crate_dirs(ROOT)
    except RuntimeError as e:
        pytest.fail(f"cannot locate the AWS SDK crates (run `cargo fetch`): {e}")
    assert set(dirs) == set(rc.SDK_CRATES.values()), f"SDK crates missing from Cargo.lock: {dirs}"
    return {service: rc.operations_in_sdk_crate(d) for service, d in dirs.items()}


def reached_calls(spec: FunctionSpec, sdk_ops, root: Path = ROOT) -> list[rc.Call]:
    calls = rc.sdk_calls(root / spec.crate, root / "crates" / "aws", sdk_ops, root)
    return [c for c in calls if (c.path, c.function) not in spec.unreached]


def needed_actions(spec: FunctionSpec, calls: list[rc.Call]) -> dict[str, list[str]]:
    """IAM action -> the call sites that need it."""
    needed: dict[str, list[str]] = {}
    for call in calls:
        site = f"{call.path}:{call.line} ({call.function}: {call.name})"
        for action in rc.iam_actions(call.name):
            needed.setdefault(action, []).append(site)
        for action in spec.implied.get(call.name, ()):
            needed.setdefault(action, []).append(site + " [implied]")
    return needed


def granted(role: dict, policy_name: str) -> dict[str, list[dict]]:
    """IAM action -> the Allow statements of one inline policy granting it."""
    out: dict[str, list[dict]] = {}
    for name, st in role_statements(role):
        if name == policy_name and st["Effect"] == "Allow":
            for action in as_list(st["Action"]):
                out.setdefault(action, []).append(st)
    return out


def compare(needed: dict[str, list[str]], allowed: set[str]) -> tuple[list[str], list[str]]:
    missing = [f"{a}  <- {', '.join(needed[a])}" for a in sorted(needed.keys() - allowed)]
    extra = sorted(allowed - needed.keys())
    return missing, extra


# ---------------------------------------------------------------------- tests


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_role_allows_exactly_what_the_code_calls(spec, resources, sdk_ops):
    calls = reached_calls(spec, sdk_ops)
    assert calls, f"no SDK calls found for {spec.crate}: is the extractor still right?"
    needed = needed_actions(spec, calls)
    missing, extra = compare(needed, set(granted(resources[spec.role], spec.code_policy)))
    assert not missing, f"{spec.role} lacks permissions the code needs:\n  " + "\n  ".join(missing)
    extra = [a for a in extra if a not in spec.pending and a not in spec.object_store]
    assert not extra, f"{spec.role} allows actions no code of {spec.crate} calls: {extra}"
    stale = [a for a in spec.pending if a in needed]
    assert not stale, f"the code of {spec.crate} now calls {stale}: remove them from `pending`"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_object_store_actions_are_granted_only_for_a_delta_table(spec, resources):
    for _, st, cond in role_statements(resources[spec.role], True):
        actions = set(as_list(st["Action"]))
        only_delta = actions & spec.object_store.keys()
        if only_delta:
            assert cond == "UseDelta", f"{spec.role}: {only_delta} granted without the UseDelta condition"
            assert actions <= spec.object_store.keys(), f"{spec.role}: {actions} mixed with delta-only grants"
            assert refs(st["Resource"]) <= {"LakeBucket", "OutputPrefix"}


# The compactor makes no SDK call: everything it does goes through delta-rs's
# object store, so its grants are listed here, each with why.
COMPACTOR_ACTIONS = {
    "s3:GetObject": "read the log, checkpoints and the small files",
    "s3:PutObject": "write the big files, the commit (conditional PUT), checkpoints and the lock object",
    "s3:AbortMultipartUpload": "a big file is a multipart upload",
    "s3:DeleteObject": "vacuum, and releasing the lock object",
    "s3:ListBucket": "list _delta_log and, for a full vacuum, the table's files",
}


def test_the_compactor_role_grants_exactly_the_object_store_actions_on_the_lake(resources, template):
    role = resources["CompactorRole"]
    assert role["Condition"] == "UseDelta"
    assert resources["CompactorFunction"]["Condition"] == "UseDelta"
    code = granted(role, "compactor")
    assert set(code) == set(COMPACTOR_ACTIONS)
    for action, sts in code.items():
        for st in sts:
            assert refs(st["Resource"]) <= {"LakeBucket", "OutputPrefix"}, (action, st["Resource"])
    (listing,) = code["s3:ListBucket"]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == {"Fn::Sub": "${OutputPrefix}/delta/sentiment/*"}
    platform = granted(role, "lambda-platform")
    assert set(platform) == {"logs:CreateLogStream", "logs:PutLogEvents", *TRACING}
    assert {p["PolicyName"] for p in role["Properties"]["Policies"]} == {"compactor", "lambda-platform"}
    # The compactor's crate calls no AWS SDK operation of its own.
    src = (ROOT / "crates" / "compactor" / "src").glob("*.rs")
    assert not any("aws_sdk_" in f.read_text() for f in src)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_unreached_call_sites_still_exist(spec, sdk_ops):
    calls = rc.sdk_calls(ROOT / spec.crate, ROOT / "crates" / "aws", sdk_ops, ROOT)
    sites = {(c.path, c.function) for c in calls}
    stale = [k for k in spec.unreached if k not in sites]
    assert not stale, f"stale `unreached` entries for {spec.function} (remove them): {stale}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_every_statement_is_scoped_to_the_stacks_own_resources(spec, resources):
    for policy, st in role_statements(resources[spec.role]):
        actions = as_list(st["Action"])
        resource = st["Resource"]
        if resource == "*" or "*" in as_list(resource):
            unscoped = {a for a in actions if a.split(":")[0] not in UNSCOPED_SERVICES}
            assert not unscoped, f"{spec.role}/{policy}: {unscoped} on Resource '*'"
            continue
        named = refs(resource) - PSEUDO
        assert named, f"{spec.role}/{policy}: {actions} on {resource}"
        if policy == "lambda-platform":
            continue  # checked in test_platform_permissions
        for action in actions:
            allowed = allowed_resources(action)
            assert allowed, f"add {action} to ALLOWED_RESOURCES with the resources it may name"
            assert named <= allowed, f"{spec.role}: {action} on {named - allowed}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_platform_permissions(spec, resources):
    role = resources[spec.role]
    platform = granted(role, "lambda-platform")
    assert set(platform) == spec.platform
    log_group = spec.function.replace("Function", "LogGroup")
    for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
        assert all(refs(st["Resource"]) == {log_group} for st in platform[action])
    for action in TRACING:
        assert [c for _, st, c in role_statements(role, True) if action in as_list(st["Action"])] == ["UseTracing"]
    if spec is CONSUMER:
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert all(refs(st["Resource"]) == {"WorkQueue"} for st in platform[action])
    else:
        assert all(refs(st["Resource"]) == {"ProducerDeadLetterQueue"} for st in platform["sqs:SendMessage"])
    # Only the two policies; nothing attached from outside.
    assert {p["PolicyName"] for p in role["Properties"]["Policies"]} == {spec.code_policy, "lambda-platform"}
    assert "ManagedPolicyArns" not in role["Properties"]


def test_kms_grant_is_conditional_on_the_key_parameter_and_only_through_dynamodb(template, resources):
    grants = [
        (cond, st)
        for _, st, cond in role_statements(resources["ProducerRole"], True)
        if "kms:Decrypt" in as_list(st["Action"])
    ]
    assert len(grants) == 1
    cond, st = grants[0]
    assert cond == "HasSourceTableKey"
    assert template["Conditions"]["HasSourceTableKey"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "SourceTableKmsKeyArn"}, ""]}]}
    assert as_list(st["Action"]) == ["kms:Decrypt"]
    assert st["Resource"] == {"Ref": "SourceTableKmsKeyArn"}
    assert st["Condition"]["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "dynamodb.${AWS::Region}.${AWS::URLSuffix}"}
    assert not [st for _, st in role_statements(resources["ConsumerRole"]) if "kms:Decrypt" in as_list(st["Action"])]


def test_the_consumer_may_send_only_to_its_dead_letter_queue(resources):
    """Refused records go to the DLQ; a message with transient failures fails
    whole (a split message could land a record twice), so the consumer never
    sends to its own work queue."""
    sends = [st for name, st in role_statements(resources["ConsumerRole"]) if "sqs:SendMessage" in as_list(st["Action"])]
    assert sorted(tuple(sorted(refs(st["Resource"]))) for st in sends) == [("WorkDeadLetterQueue",)]
    env = resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["DEAD_LETTER_QUEUE_URL"] == {"Ref": "WorkDeadLetterQueue"}
    assert "QUEUE_URL" not in env


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.function)
def test_only_lambda_of_this_account_assumes_the_role(spec, resources):
    (st,) = resources[spec.role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert st["Action"] == "sts:AssumeRole"
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert resources[spec.function]["Properties"]["Role"] == {"Fn::GetAtt": [spec.role, "Arn"]}


def test_sam_adds_no_permissions_to_the_function_roles(resources, transformed):
    """With `Role` set, SAM attaches neither AWSLambdaBasicExecutionRole nor the
    SQS event's AWSLambdaSQSQueueExecutionRole (both allow their actions on *)."""
    out = transformed["Resources"]
    for spec in SPECS:
        assert out[spec.role] == resources[spec.role]
    roles = {k for k, v in out.items() if v["Type"] == "AWS::IAM::Role"}
    schedule_roles = {"ProducerFunctionNightlyRole", "ProducerFunctionResumeRole"}
    assert roles == {"ProducerRole", "ConsumerRole", "CompactorRole", "CompactorFunctionNightlyRole"} | schedule_roles
    assert out["CompactorRole"] == resources["CompactorRole"]
    # The compaction's schedule may invoke the compactor, no more.
    statements = [
        (st["Action"], refs(st["Resource"]))
        for p in out["CompactorFunctionNightlyRole"]["Properties"]["Policies"]
        for st in as_list(p["PolicyDocument"]["Statement"])
    ]
    assert statements == [("lambda:InvokeFunction", {"CompactorFunction"})]
    assert not [k for k, v in out.items() if v["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")]
    # A schedule's role may invoke the producer and dead-letter to its queue, no more.
    for role in schedule_roles:
        statements = [
            (st["Action"], refs(st["Resource"]))
            for p in out[role]["Properties"]["Policies"]
            for st in as_list(p["PolicyDocument"]["Statement"])
        ]
        assert sorted(statements, key=str) == sorted(
            [("lambda:InvokeFunction", {"ProducerFunction"}), ("sqs:SendMessage", {"ProducerDeadLetterQueue"})],
            key=str,
        )


# ------------------------------------------------------- the extractor itself

FAKE_OPS = {
    "sqs": {"send_message_batch": "SendMessageBatch", "receive_message": "ReceiveMessage"},
    "dynamodb": {"scan": "Scan", "put_item": "PutItem"},
    "s3": {"put_object": "PutObject", "upload_part": "UploadPart"},
}


def test_extractor_finds_fluent_calls_and_ignores_comments_strings_tests_and_iterators():
    src = textwrap.dedent(
        r'''
        use aws_sdk_dynamodb::Client;
        // self.client.put_item() in a comment
        /* and .put_item() in a /* nested */ block comment */
        const DOC: &str = "client.put_item()";
        const RAW: &str = r#"client.put_item() "quoted""#;
        fn scan_page(client: &Client, c: char) -> Vec<u64> {
            let q = '"';
            let mut req = client
                .scan()
                .table_name("t");
            req = req.limit(10);
            let _ = req.send();
            (0..3u64).scan(0, |s, x| { *s += x; Some(*s) }).collect()
        }
        #[cfg(test)]
        mod tests {
            fn t(client: &Client) { client.put_item(); }
        }
        '''
    )
    calls = rc.calls_in_source(rc.clean_rust(src), "x.rs", FAKE_OPS)
    assert [(c.name, c.line, c.function) for c in calls] == [("dynamodb:Scan", 10, "scan_page")]


def test_extractor_needs_the_service_crate_in_the_file():
    calls = rc.calls_in_source(rc.clean_rust("fn f(q: Q) { q.send_message_batch(); }"), "x.rs", FAKE_OPS)
    assert calls == []


def test_extractor_maps_batch_and_multipart_operations_to_their_iam_actions():
    assert rc.iam_actions("sqs:SendMessageBatch") == ("sqs:SendMessage",)
    assert rc.iam_actions("sqs:DeleteMessageBatch") == ("sqs:DeleteMessage",)
    assert rc.iam_actions("s3:UploadPart") == ("s3:PutObject",)
    assert rc.iam_actions("s3:CompleteMultipartUpload") == ("s3:PutObject",)
    assert rc.iam_actions("s3:AbortMultipartUpload") == ("s3:AbortMultipartUpload",)
    assert rc.iam_actions("glue:BatchCreatePartition") == ("glue:BatchCreatePartition",)


def test_an_sdk_call_added_without_a_permission_is_reported(tmp_path):
    aws = tmp_path / "crates" / "aws" / "src"
    aws.mkdir(parents=True)
    (aws / "lib.rs").write_text("pub mod sqs;\npub mod s3;\n#[cfg(feature = \"t\")]\npub mod testing;\npub use sqs::SqsQueue;\npub use s3::S3Sink;\n")
    (aws / "sqs.rs").write_text(
        "use aws_sdk_sqs::Client;\npub struct SqsQueue;\nimpl SqsQueue {\n"
        "    async fn send(&self, c: Client) { c.send_message_batch().send().await; }\n"
        "    async fn receive(&self, c: Client) { c.receive_message().send().await; }\n}\n"
    )
    (aws / "s3.rs").write_text("use aws_sdk_s3::Client;\nfn put(c: Client) { c.put_object(); }\n")
    (aws / "testing.rs").write_text("use aws_sdk_s3::Client;\nfn t(c: Client) { c.upload_part(); }\n")
    producer = tmp_path / "crates" / "producer" / "src"
    producer.mkdir(parents=True)
    (producer / "main.rs").write_text("use etl_aws::{Clients, SqsQueue};\nfn main() {}\n")

    spec = FunctionSpec(
        "F", "crates/producer", "R", "p", unreached={("crates/aws/src/sqs.rs", "receive"): "consumer half"}
    )
    calls = reached_calls(spec, FAKE_OPS, root=tmp_path)
    # s3 and the feature-gated testing module are not linked; receive is unreached.
    assert [(c.name, c.function) for c in calls] == [("sqs:SendMessageBatch", "send")]
    assert compare(needed_actions(spec, calls), {"sqs:SendMessage"}) == ([], [])

    # Someone adds a call without a permission:
    (aws / "sqs.rs").write_text((aws / "sqs.rs").read_text().replace("}\n}\n", "}\n    fn more(c: Client) { c.receive_message(); }\n}\n"))
    calls = reached_calls(spec, FAKE_OPS, root=tmp_path)
    missing, extra = compare(needed_actions(spec, calls), {"sqs:SendMessage"})
    assert len(missing) == 1 and missing[0].startswith("sqs:ReceiveMessage  <- crates/aws/src/sqs.rs:6 (more")
    assert extra == []
