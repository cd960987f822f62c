"""Structural checks of template.yaml: the properties the pipeline's
behaviour depends on, and the contracts shared with the Rust code."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from helpers import ROOT, as_list, conditional, functions, refs, role_statements

OUTPUT_RS = ROOT / "crates" / "core" / "src" / "output.rs"


def parse_columns(rust: str) -> list[tuple[str, str]]:
    """The `COLUMNS` constant of crates/core/src/output.rs: [(name, athena type)]."""
    m = re.search(r"pub const COLUMNS\s*:\s*&\[\(&str,\s*&str\)\]\s*=\s*&\[(.*?)\];", rust, re.S)
    assert m, "COLUMNS not found in crates/core/src/output.rs"
    return re.findall(r'\(\s*"([^"]+)"\s*,\s*"([^"]+)"\s*\)', m.group(1))


def event(fn: dict, type_: str, name: str | None = None) -> dict:
    events = [
        e for n, e in fn["Properties"].get("Events", {}).items() if e["Type"] == type_ and name in (None, n)
    ]
    assert len(events) == 1, f"expected one {type_} event {name or ''}"
    return events[0]["Properties"]


def by_ref(resources: dict, value) -> str:
    (name,) = refs(value) & resources.keys()
    return name


# ------------------------------------------------------------------- functions


@pytest.mark.parametrize("name,binary", [("ProducerFunction", "producer"), ("ConsumerFunction", "consumer")])
def test_function_is_a_rust_arm64_binary_built_by_cargo_lambda(template, resources, name, binary):
    fn = resources[name]
    props = {**template["Globals"]["Function"], **fn["Properties"]}
    assert props["Runtime"] == "provided.al2023"
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == "bootstrap"
    assert props["CodeUri"] == "."  # the workspace root: Cargo.toml with [workspace]
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"]["Binary"] == binary
    cargo = tomllib.loads((ROOT / "crates" / binary / "Cargo.toml").read_text())
    assert binary in [b["name"] for b in cargo.get("bin", [])] or cargo["package"]["name"] == binary


@pytest.mark.parametrize("name,log_group", [("ProducerFunction", "ProducerLogGroup"), ("ConsumerFunction", "ConsumerLogGroup")])
def test_function_logs_json_to_its_own_log_group_with_retention(resources, name, log_group):
    logging = resources[name]["Properties"]["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["LogGroup"] == {"Ref": log_group}
    assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_producer_runs_on_a_schedule_with_time_zone_retries_and_dead_letters(resources):
    fn = resources["ProducerFunction"]["Properties"]
    schedule = event(resources["ProducerFunction"], "ScheduleV2", "Nightly")
    assert schedule["ScheduleExpression"] == {"Ref": "ScheduleExpression"}
    assert schedule["ScheduleExpressionTimezone"] == {"Ref": "ScheduleTimezone"}
    assert schedule["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert by_ref(resources, schedule["DeadLetterConfig"]["Arn"]) == "ProducerDeadLetterQueue"
    # Failures after Lambda's own async retries land in the same queue.
    assert by_ref(resources, fn["DeadLetterQueue"]["TargetArn"]) == "ProducerDeadLetterQueue"
    assert fn["Timeout"] == 900


def test_schedule_input_is_a_scheduled_event_like_the_fixture(resources):
    schedule = event(resources["ProducerFunction"], "ScheduleV2", "Nightly")
    text = schedule["Input"]["Fn::Sub"]
    for pseudo, value in {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1"}.items():
        text = text.replace("${" + pseudo + "}", value)
    assert "${" not in text
    payload = json.loads(text)
    assert payload["detail-type"] == "Scheduled Event"
    fixture = ROOT / "events" / "scheduled-event.json"
    if fixture.exists():
        assert payload.keys() == json.loads(fixture.read_text()).keys()


def test_resume_schedule_sends_resume_and_is_on_by_default(template, resources):
    resume = event(resources["ProducerFunction"], "ScheduleV2", "Resume")
    assert json.loads(resume["Input"]) == {"mode": "resume"}
    assert resume["State"] == {"Fn::If": ["HasResumeSchedule", "ENABLED", "DISABLED"]}
    # A run longer than one invocation continues within minutes, not the next night.
    param = template["Parameters"]["ResumeScheduleExpression"]
    assert param["Default"] == "rate(15 minutes)"
    assert re.fullmatch(param["AllowedPattern"], param["Default"]) and re.fullmatch(param["AllowedPattern"], "")
    assert template["Conditions"]["HasResumeSchedule"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ResumeScheduleExpression"}, ""]}]}
    assert by_ref(resources, resume["DeadLetterConfig"]["Arn"]) == "ProducerDeadLetterQueue"


def test_consumer_polls_the_work_queue_with_partial_batch_failures(resources):
    sqs = event(resources["ConsumerFunction"], "SQS")
    assert by_ref(resources, sqs["Queue"]) == "WorkQueue"
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["BatchSize"] == {"Ref": "BatchSize"}
    assert sqs["MaximumBatchingWindowInSeconds"] == {"Ref": "MaximumBatchingWindowInSeconds"}
    assert sqs["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConsumerConcurrency"}


def test_function_environment_carries_the_documented_variables(resources):
    producer = resources["ProducerFunction"]["Properties"]["Environment"]["Variables"]
    consumer = resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert {"SOURCE_TABLE", "STATE_TABLE", "QUEUE_URL"} <= producer.keys()
    assert {
        "OUTPUT_BUCKET",
        "OUTPUT_PREFIX",
        "GLUE_DATABASE",
        "GLUE_TABLE",
        "SENTIMENT_ENGINE",
        "LANGUAGE",
        "DEAD_LETTER_QUEUE_URL",
    } <= consumer.keys()
    assert refs(producer["STATE_TABLE"]) == {"StateTable"}
    assert refs(producer["QUEUE_URL"]) == {"WorkQueue"}
    assert refs(consumer["OUTPUT_BUCKET"]) == {"LakeBucket"}
    # The views are created at deploy time (Glue VIRTUAL_VIEW tables); with
    # ATHENA_WORKGROUP set the consumer would run their DDL on every cold start.
    assert "ATHENA_WORKGROUP" not in consumer


def test_source_attribute_names_and_lookback_are_parameters(template, resources):
    producer = resources["ProducerFunction"]["Properties"]["Environment"]["Variables"]
    for var, param, default in [
        ("ID_FIELD", "SourceIdField", "id"),
        ("TEXT_FIELD", "SourceTextField", "text"),
        ("CREATED_AT_FIELD", "SourceCreatedAtField", "created_at"),
        ("UPDATED_AT_FIELD", "SourceUpdatedAtField", "updated_at"),
        ("LOOKBACK_SECONDS", "LookbackSeconds", 3600),
    ]:
        assert producer[var] == {"Ref": param}, var
        assert template["Parameters"][param]["Default"] == default, param
    # A table the stack creates is keyed by the configured id attribute.
    key = resources["SourceTable"]["Properties"]["KeySchema"]
    assert key == [{"AttributeName": {"Ref": "SourceIdField"}, "KeyType": "HASH"}]


@pytest.mark.parametrize("name", ["ProducerFunction", "ConsumerFunction"])
def test_metrics_carry_the_stack_name(resources, name):
    env = resources[name]["Properties"]["Environment"]["Variables"]
    assert env["METRICS_STACK"] == {"Ref": "AWS::StackName"}


def test_producer_concurrency_is_not_reserved_by_default(template, resources):
    # A reservation of 1 fails stack creation where the account quota is 10.
    assert template["Parameters"]["ReserveProducerConcurrency"]["Default"] == "false"
    assert resources["ProducerFunction"]["Properties"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveProducer", 1, {"Ref": "AWS::NoValue"}]
    }


def test_tracing_is_an_option_off_by_default(template):
    assert template["Parameters"]["Tracing"]["Default"] == "false"
    assert template["Globals"]["Function"]["Tracing"] == {"Fn::If": ["UseTracing", "Active", "PassThrough"]}
    assert template["Conditions"]["UseTracing"] == {"Fn::Equals": [{"Ref": "Tracing"}, "true"]}


MESSAGE_RS = ROOT / "crates" / "core" / "src" / "message" / "mod.rs"

# Lambda's limit on an invocation's payload, the SQS event included.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
# What the SQS event adds around each body: messageId, receiptHandle (up to
# 1 KiB), md5OfBody, attributes, eventSourceARN, awsRegion, keys and quotes.
SQS_EVENT_FIELDS_PER_MESSAGE = 2048


def rust_const(path, name) -> int:
    m = re.search(rf"pub const {name}\s*:\s*usize\s*=\s*([0-9_]+);", path.read_text())
    assert m, f"{name} not found in {path}"
    return int(m.group(1).replace("_", ""))


def test_the_largest_consumer_batch_fits_lambdas_payload_limit(template):
    params = template["Parameters"]
    batch, budget = params["BatchSize"], params["MessageBudgetBytes"]
    # The budget bounds a body as the event carries it (JSON-escaped), so
    # the parameters' maxima bound the payload whatever the texts hold.
    worst = batch["MaxValue"] * (budget["MaxValue"] + SQS_EVENT_FIELDS_PER_MESSAGE)
    assert worst <= LAMBDA_PAYLOAD_LIMIT, worst
    assert budget["MaxValue"] == rust_const(MESSAGE_RS, "SQS_MAX_MESSAGE_BYTES") == 1_048_576
    assert budget["Default"] == rust_const(MESSAGE_RS, "DEFAULT_MESSAGE_BUDGET")
    assert rust_const(MESSAGE_RS, "LAMBDA_MAX_PAYLOAD_BYTES") == LAMBDA_PAYLOAD_LIMIT
    # The batch is at most 10 (SQS's receive limit), so no batching-window rule is needed.
    assert batch["MaxValue"] <= 10
    producer = template["Resources"]["ProducerFunction"]["Properties"]["Environment"]["Variables"]
    assert producer["MESSAGE_BUDGET_BYTES"] == {"Ref": "MessageBudgetBytes"}
    queue = template["Resources"]["WorkQueue"]["Properties"]
    assert queue["MaximumMessageSize"] == budget["MaxValue"]


COMPREHEND_RS = ROOT / "crates" / "aws" / "src" / "comprehend.rs"


def supported_languages() -> list[str]:
    """SUPPORTED_LANGUAGES of crates/aws/src/comprehend.rs: what LANGUAGE may be besides auto."""
    m = re.search(r"pub const SUPPORTED_LANGUAGES\s*:\s*&\[&str\]\s*=\s*&\[(.*?)\];", COMPREHEND_RS.read_text(), re.S)
    assert m, "SUPPORTED_LANGUAGES not found in crates/aws/src/comprehend.rs"
    return re.findall(r'"([^"]+)"', m.group(1))


def test_language_parameter_allows_exactly_what_the_consumer_accepts(template):
    langs = supported_languages()
    assert len(langs) == 12 and "en" in langs  # Comprehend's sentiment languages
    # The consumer's LANGUAGE parser (LanguageMode::from_str) accepts these and `auto`.
    comprehend = COMPREHEND_RS.read_text()
    assert 'eq_ignore_ascii_case("auto")' in comprehend
    param = template["Parameters"]["Language"]
    assert "AllowedPattern" not in param
    assert sorted(param["AllowedValues"]) == sorted(langs + ["auto"])
    assert param["Default"] in param["AllowedValues"]


def test_glue_database_name_is_derived_from_the_stack_unless_set(template, resources):
    param = template["Parameters"]["GlueDatabaseName"]
    assert param["Default"] == ""
    assert template["Conditions"]["DeriveGlueDatabaseName"] == {"Fn::Equals": [{"Ref": "GlueDatabaseName"}, ""]}
    name = resources["GlueDatabase"]["Properties"]["DatabaseInput"]["Name"]
    assert name == {
        "Fn::If": [
            "DeriveGlueDatabaseName",
            {"Fn::Join": ["_", {"Fn::Split": ["-", {"Ref": "AWS::StackName"}]}]},
            {"Ref": "GlueDatabaseName"},
        ]
    }
    # What the derivation gives for the samconfig stack: the old fixed default.
    stack = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]["stack_name"]
    derived = "_".join(stack.split("-"))
    assert derived == "sentiment_etl" and re.fullmatch(param["AllowedPattern"], derived)


# ------------------------------------------------------------------------ SQS


def test_work_queue_redrives_to_its_dead_letter_queue(resources):
    props = resources["WorkQueue"]["Properties"]
    redrive = props["RedrivePolicy"]
    assert by_ref(resources, redrive["deadLetterTargetArn"]) == "WorkDeadLetterQueue"
    assert 3 <= int(redrive["maxReceiveCount"]) <= 10


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(resources):
    visibility = resources["WorkQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * resources["ConsumerFunction"]["Properties"]["Timeout"]


@pytest.mark.parametrize("name", ["WorkQueue", "WorkDeadLetterQueue", "ProducerDeadLetterQueue"])
def test_queue_is_encrypted_and_refuses_plain_http(resources, name):
    props = resources[name]["Properties"]
    assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    policies = [r for r in resources.values() if r["Type"] == "AWS::SQS::QueueInlinePolicy"]
    assert any(refs(p["Properties"]["Queue"]) == {name} and denies_insecure_transport(p) for p in policies)


def test_retention_keeps_dead_letters_longest(resources):
    assert resources["WorkQueue"]["Properties"]["MessageRetentionPeriod"] >= 4 * 86400
    for dlq in ("WorkDeadLetterQueue", "ProducerDeadLetterQueue"):
        assert resources[dlq]["Properties"]["MessageRetentionPeriod"] == 14 * 86400


# ------------------------------------------------------------------- DynamoDB


def test_source_table_is_created_only_when_no_existing_name_is_given(template, resources):
    assert resources["SourceTable"]["Condition"] == "CreateSourceTable"
    assert template["Conditions"]["CreateSourceTable"] == {"Fn::Equals": [{"Ref": "SourceTableName"}, ""]}
    assert template["Parameters"]["SourceTableName"]["Default"] == ""


@pytest.mark.parametrize("name", ["SourceTable", "StateTable"])
def test_tables_are_on_demand_with_backups_and_encryption(resources, name):
    props = resources[name]["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    for _, sse in conditional(props["SSESpecification"]):
        assert sse["SSEEnabled"] is True


def test_a_created_source_table_uses_the_customer_managed_key_when_given(resources):
    sse = resources["SourceTable"]["Properties"]["SSESpecification"]["Fn::If"]
    assert sse[0] == "HasSourceTableKey"
    assert sse[1] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "SourceTableKmsKeyArn"}}


def test_state_table_is_keyed_by_pk_and_expires_items(resources):
    props = resources["StateTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


# ------------------------------------------------------------------------- S3


def denies_insecure_transport(policy_resource: dict) -> bool:
    for st in as_list(policy_resource["Properties"]["PolicyDocument"]["Statement"]):
        cond = st.get("Condition", {}).get("Bool", {})
        if st["Effect"] == "Deny" and st.get("Principal") == "*" and cond.get("aws:SecureTransport") == "false":
            return True
    return False


@pytest.mark.parametrize("name", ["LakeBucket", "AthenaResultsBucket", "AccessLogsBucket"])
def test_bucket_is_private_encrypted_and_tls_only(resources, name):
    props = resources[name]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"][k] is True for k in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    policies = [r for r in resources.values() if r["Type"] == "AWS::S3::BucketPolicy"]
    assert any(refs(p["Properties"]["Bucket"]) == {name} and denies_insecure_transport(p) for p in policies)


def test_lake_is_versioned_and_expires_noncurrent_versions(resources):
    props = resources["LakeBucket"]["Properties"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and r["NoncurrentVersionExpiration"]["NoncurrentDays"] > 0 for r in rules)
    assert resources["LakeBucket"]["DeletionPolicy"] == "Retain"


def test_athena_results_expire(resources):
    rules = resources["AthenaResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert any(r["Status"] == "Enabled" and r.get("ExpirationInDays", 0) > 0 for r in rules)


# --------------------------------------------------------------- Glue, Athena


def test_output_contract_parses():
    cols = parse_columns(OUTPUT_RS.read_text())
    assert cols[0] == ("id", "string") and len(cols) >= 10


def test_glue_table_columns_match_the_output_contract_in_order(resources):
    contract = parse_columns(OUTPUT_RS.read_text())
    columns = resources["SentimentTable"]["Properties"]["TableInput"]["StorageDescriptor"]["Columns"]
    assert [(c["Name"], c["Type"]) for c in columns] == contract


def test_glue_table_is_parquet_partitioned_by_dt_under_the_prefix(resources):
    table = resources["SentimentTable"]["Properties"]
    assert refs(table["DatabaseName"]) == {"GlueDatabase"}
    tin = table["TableInput"]
    assert tin["Name"] == "sentiment"
    assert tin["TableType"] == "EXTERNAL_TABLE"
    delta, hive = tin["PartitionKeys"]["Fn::If"][0], tin["PartitionKeys"]["Fn::If"][2]
    assert delta == "UseDelta"
    assert [(k["Name"], k["Type"]) for k in hive] == [("dt", "string")]
    sd = tin["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    assert sd["InputFormat"].endswith("MapredParquetInputFormat")
    assert sd["OutputFormat"].endswith("MapredParquetOutputFormat")
    assert sd["Location"]["Fn::If"][2] == {"Fn::Sub": "s3://${LakeBucket}/${OutputPrefix}/sentiment/"}


def test_a_delta_table_is_registered_for_athena_to_read_natively(template, resources):
    """Athena's DDL for a Delta table is `CREATE EXTERNAL TABLE … LOCATION
    's3://…/' TBLPROPERTIES ('table_type'='DELTA')`: no partition keys (the
    log has them), the location the consumer commits to."""
    assert template["Parameters"]["TableFormat"]["AllowedValues"] == ["hive", "delta"]
    assert template["Parameters"]["TableFormat"]["Default"] == "hive"
    assert template["Conditions"]["UseDelta"] == {"Fn::Equals": [{"Ref": "TableFormat"}, "delta"]}
    tin = resources["SentimentTable"]["Properties"]["TableInput"]
    cond, delta_params, _ = tin["Parameters"]["Fn::If"]
    assert cond == "UseDelta"
    assert delta_params["table_type"] == "DELTA"
    assert delta_params["EXTERNAL"] == "TRUE"
    assert "projection.enabled" not in delta_params
    assert tin["PartitionKeys"]["Fn::If"][:2] == ["UseDelta", []]
    assert tin["TableType"] == "EXTERNAL_TABLE"
    # The consumer commits to exactly the table's location.
    env = resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TABLE_FORMAT"] == {"Ref": "TableFormat"}
    cond, delta_location, hive_location = tin["StorageDescriptor"]["Location"]["Fn::If"]
    assert cond == "UseDelta"
    assert delta_location == {"Fn::Sub": "s3://${LakeBucket}/${OutputPrefix}/delta/sentiment/"}
    compactor = resources["CompactorFunction"]["Properties"]
    assert compactor["Environment"]["Variables"]["TABLE_LOCATION"] == delta_location
    # The consumer writes where the table is: OUTPUT_PREFIX/sentiment/.
    assert env["OUTPUT_PREFIX"] == {
        "Fn::If": ["UseDelta", {"Fn::Sub": "${OutputPrefix}/delta"}, {"Ref": "OutputPrefix"}]
    }
    # What the stack tells `etl --stack`: the table's location and format.
    assert template["Outputs"]["LakeLocation"]["Value"] == tin["StorageDescriptor"]["Location"]
    assert template["Outputs"]["LakeTableFormat"]["Value"] == {"Ref": "TableFormat"}
    cli = (ROOT / "crates" / "cli" / "src" / "cloud" / "mod.rs").read_text()
    assert '"LakeTableFormat" => s.table_format' in cli and '"LakeLocation" =>' in cli
    # Views read `sentiment` unqualified: the same Glue views serve both formats.
    for view in ("SentimentLatestView", "DailySentimentView"):
        assert "Condition" not in resources[view]


def test_switching_formats_never_lets_one_table_touch_the_others_files(template, resources):
    """A Delta vacuum deletes every file under its location that its log
    does not name: the Hive lake must not be under it, nor it under the
    Hive lake (whose readers would see Delta's replaced files as rows).
    Every grant that deletes, and every listing, stays inside the Delta
    location."""
    tin = resources["SentimentTable"]["Properties"]["TableInput"]
    _, delta, hive = tin["StorageDescriptor"]["Location"]["Fn::If"]
    delta, hive = delta["Fn::Sub"], hive["Fn::Sub"]
    assert not delta.startswith(hive) and not hive.startswith(delta), (delta, hive)
    delta_keys = delta.removeprefix("s3://${LakeBucket}/")
    for role in ("CompactorRole", "ConsumerRole"):
        for _, st, _ in role_statements(resources[role], True):
            actions = set(as_list(st["Action"]))
            if actions & {"s3:DeleteObject", "s3:ListBucket"} and "LakeBucket" in refs(st["Resource"]):
                where = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix") or st["Resource"]
                text = where["Fn::Sub"]
                assert delta_keys in text, (role, actions, text)


def test_the_nightly_compaction_runs_one_at_a_time_on_a_schedule(template, resources):
    fn = resources["CompactorFunction"]
    props = fn["Properties"]
    assert fn["Metadata"]["BuildProperties"]["Binary"] == "compactor"
    # A reservation is optional (new accounts refuse one): the lock object,
    # taken and released by conditional writes, is what keeps compactions apart.
    assert props["ReservedConcurrentExecutions"] == {"Fn::If": ["ReserveCompactor", 1, {"Ref": "AWS::NoValue"}]}
    assert template["Parameters"]["ReserveCompactorConcurrency"]["Default"] == "false"
    assert template["Conditions"]["ReserveCompactor"] == {
        "Fn::Equals": [{"Ref": "ReserveCompactorConcurrency"}, "true"]
    }
    lock = (ROOT / "crates" / "delta" / "src" / "maintain" / "lock.rs").read_text()
    assert "PutMode::Update" in lock and "PutMode::Create" in lock, "the compaction lock's writes are conditional"
    assert props["Timeout"] == 900
    env = props["Environment"]["Variables"]
    assert env["TARGET_FILE_BYTES"] == {"Ref": "CompactionTargetFileBytes"}
    assert env["VACUUM_RETENTION_HOURS"] == {"Ref": "VacuumRetentionHours"}
    assert template["Parameters"]["CompactionTargetFileBytes"]["Default"] == 128 * 1024 * 1024
    assert template["Parameters"]["VacuumRetentionHours"]["Default"] == 168
    sched = props["Events"]["Nightly"]
    assert sched["Type"] == "ScheduleV2"
    assert sched["Properties"]["ScheduleExpression"] == {"Ref": "CompactionScheduleExpression"}
    alarm = resources["CompactorErrorsAlarm"]
    assert alarm["Condition"] == "UseDelta"
    assert alarm["Properties"]["Dimensions"][0]["Value"] == {"Ref": "CompactorFunction"}


def test_partition_projection_is_an_option(template, resources):
    assert template["Parameters"]["PartitionProjection"]["Default"] == "false"
    params = resources["SentimentTable"]["Properties"]["TableInput"]["Parameters"]["Fn::If"]
    assert params[0] == "UseDelta"
    hive = params[2]["Fn::If"]
    on, off = hive[1:]
    assert hive[0] == "UsePartitionProjection"
    assert "projection.enabled" not in off
    assert on["projection.enabled"] == "true"
    assert on["projection.dt.type"] == "date"
    assert on["projection.dt.format"] == "yyyy-MM-dd"
    assert on["projection.dt.range"] == {"Fn::Sub": "${PartitionProjectionStart},NOW"}
    # ${!dt} is Fn::Sub's escape for a literal ${dt}.
    assert on["storage.location.template"] == {"Fn::Sub": "s3://${LakeBucket}/${OutputPrefix}/sentiment/dt=${!dt}/"}


def test_athena_workgroup_is_enforced_cost_capped_and_encrypted(resources):
    wg = resources["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert wg["BytesScannedCutoffPerQuery"] == {"Ref": "AthenaBytesScannedCutoff"}
    assert wg["PublishCloudWatchMetricsEnabled"] is True
    assert wg["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    assert refs(wg["ResultConfiguration"]["OutputLocation"]) == {"AthenaResultsBucket"}
    assert wg["ResultConfiguration"]["EncryptionConfiguration"]["EncryptionOption"] in ("SSE_S3", "SSE_KMS")


# --------------------------------------------------------------------- alarms


def alarm_on(resources: dict, namespace: str, metric: str, target: str) -> dict:
    for res in resources.values():
        p = res.get("Properties", {})
        if res["Type"] == "AWS::CloudWatch::Alarm" and p.get("Namespace") == namespace and p.get("MetricName") == metric:
            if target in refs(p["Dimensions"]):
                return p
    raise AssertionError(f"no alarm on {namespace} {metric} of {target}")


@pytest.mark.parametrize("queue", ["WorkDeadLetterQueue", "ProducerDeadLetterQueue"])
def test_dead_letter_queues_alarm_on_the_first_message(resources, queue):
    alarm = alarm_on(resources, "AWS/SQS", "ApproximateNumberOfMessagesVisible", queue)
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_function_errors_and_queue_age_alarm(resources):
    alarm_on(resources, "AWS/Lambda", "Errors", "ConsumerFunction")
    alarm_on(resources, "AWS/Lambda", "Errors", "ProducerFunction")
    alarm_on(resources, "AWS/SQS", "ApproximateAgeOfOldestMessage", "WorkQueue")


def test_alarms_notify_the_optional_topic(template, resources):
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert resources["AlarmTopic"]["Condition"] == "HasAlarmEmail"
    for res in resources.values():
        if res["Type"] == "AWS::CloudWatch::Alarm":
            assert res["Properties"]["AlarmActions"] == {
                "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
            }


def test_the_deploy_output_says_when_alarms_notify_nobody(template):
    out = template["Outputs"]["AlarmNotifications"]["Value"]["Fn::If"]
    assert out[0] == "HasAlarmEmail"
    assert "${AlarmEmail}" in out[1]["Fn::Sub"]
    assert out[2].startswith("NOBODY") and "AlarmEmail" in out[2]
    deploy = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert "notify nobody" in deploy and "AlarmNotifications" in deploy


def test_quiet_failures_have_alarms(template, resources):
    alarm_on(resources, "SentimentEtl", "RunsCompleted", "AWS::StackName")
    alarm_on(resources, "SentimentEtl", "RecordsRejected", "AWS::StackName")
    alarm_on(resources, "SentimentEtl", "ComprehendUnits", "AWS::StackName")
    budget = alarm_on(resources, "SentimentEtl", "ComprehendUnits", "AWS::StackName")
    assert budget["Threshold"] == {"Ref": "ComprehendDailyUnitBudget"} and budget["Period"] == 86400
    no_run = alarm_on(resources, "SentimentEtl", "RunsCompleted", "AWS::StackName")
    # No data in a day means no run at all: that must alarm too.
    assert no_run["TreatMissingData"] == "breaching" and no_run["ComparisonOperator"] == "LessThanThreshold"
    math = {
        name: {m["Id"]: m for m in res["Properties"]["Metrics"]}
        for name, res in resources.items()
        if res["Type"] == "AWS::CloudWatch::Alarm" and "Metrics" in res["Properties"]
    }
    rate = math["ConsumerMessageFailureRateAlarm"]
    assert rate["failed"]["MetricStat"]["Metric"]["MetricName"] == "MessagesFailed"
    assert rate["received"]["MetricStat"]["Metric"]["MetricName"] == "MessagesIn"
    assert resources["ConsumerMessageFailureRateAlarm"]["Properties"]["Threshold"] == {"Ref": "MessageFailureAlarmPercent"}
    partial = math["ProducerPartialRunAlarm"]
    assert partial["partial"]["MetricStat"]["Metric"]["MetricName"] == "RunsPartial"
    props = resources["ProducerPartialRunAlarm"]["Properties"]
    # Unfinished in every hour of a day: older than the nightly schedule.
    assert props["EvaluationPeriods"] * partial["partial"]["MetricStat"]["Period"] == 86400
    assert props["DatapointsToAlarm"] == props["EvaluationPeriods"]


# ------------------------------------------------------- parameters, outputs


def test_parameters_cover_the_operational_knobs(template):
    assert {
        "ScheduleExpression",
        "ScheduleTimezone",
        "SourceTableName",
        "SentimentEngine",
        "Language",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "MaxConsumerConcurrency",
        "LogRetentionDays",
        "AthenaBytesScannedCutoff",
        "OutputPrefix",
        "PartitionProjection",
    } <= template["Parameters"].keys()
    assert template["Parameters"]["SentimentEngine"]["AllowedValues"] == ["vader", "comprehend"]


def test_outputs_name_every_resource_a_user_needs(template):
    assert {
        "SourceTableName",
        "StateTableName",
        "WorkQueueUrl",
        "WorkDeadLetterQueueUrl",
        "LakeBucketName",
        "AthenaResultsBucketName",
        "ProducerFunctionArn",
        "ConsumerFunctionArn",
        "GlueDatabaseName",
        "GlueTableName",
        "AthenaWorkGroupName",
    } <= template["Outputs"].keys()


def test_every_function_and_event_is_in_the_transformed_template(transformed):
    types = {v["Type"] for v in transformed["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::Scheduler::Schedule", "AWS::Lambda::EventSourceMapping"} <= types
    assert len(functions(transformed["Resources"])) == 0


# ----------------------------------------------------------------- samconfig


def test_samconfig_builds_with_cargo_lambda_and_deploys_without_prompts():
    conf = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert conf["version"] == 0.1
    build = conf["default"]["build"]["parameters"]
    assert build["beta_features"] is True and build["parallel"] is True
    # SAM's cache would hash the whole workspace (CodeUri ".") on every build and never hit.
    assert build["cached"] is False
    deploy = conf["default"]["deploy"]["parameters"]
    assert deploy["capabilities"] in ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is False
    assert deploy["fail_on_empty_changeset"] is False
    # Pinned overrides would revert every parameter changed since on each `make deploy`.
    assert "parameter_overrides" not in deploy
    assert conf["default"]["validate"]["parameters"]["lint"] is True


def test_samconfig_does_not_pin_parameters_a_user_changes():
    conf = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for command, section in conf["default"].items():
        assert "parameter_overrides" not in section.get("parameters", {}), command


# Read by crates/aws code both binaries link, not by their config modules.
SHARED_ENV = {"METRICS_STACK": ROOT / "crates" / "aws" / "src" / "emf.rs"}

# Set by the template ahead of the code that reads them (work on other
# branches) -> why. Stale entries (the code reads the variable now) fail.
PENDING_ENV = {
    "ProducerFunction": {},
    "ConsumerFunction": {},
}


def env_vars_read(crate: str) -> tuple[set[str], set[str]]:
    """(required, all) environment variables a binary's config code reads."""
    required, every = set(), set()
    for var, path in SHARED_ENV.items():
        assert f'"{var}"' in path.read_text(), f"{path} no longer reads {var}"
        every.add(var)
    for f in (ROOT / crate / "src").rglob("*.rs"):
        text = f.read_text()
        text = text.split("#[cfg(test)]")[0]  # the config tests set variables of their own
        for kind, var in re.findall(r'\b(required|optional|parsed|list)\(\s*env\s*,\s*"([A-Z0-9_]+)"', text):
            every.add(var)
            if kind == "required":
                required.add(var)
    return required, every


@pytest.mark.parametrize("name,crate", [("ProducerFunction", "crates/producer"), ("ConsumerFunction", "crates/consumer")])
def test_environment_sets_every_required_variable_and_only_known_ones(resources, name, crate):
    required, every = env_vars_read(crate)
    assert required, f"no configuration variables found in {crate}: is env_vars_read still right?"
    env = resources[name]["Properties"]["Environment"]["Variables"].keys()
    assert required <= env, f"{name} lacks required variables {required - env}"
    pending = PENDING_ENV[name]
    unread = env - every - pending.keys()
    assert not unread, f"{name} sets variables its code never reads: {unread}"
    stale = pending.keys() & every
    assert not stale, f"{crate} reads {stale} now: remove them from PENDING_ENV"


def test_the_account_wide_limits_are_shared_and_the_scan_is_a_parameter(template, resources):
    """Comprehend's quota is the account's: the consumer divides it by the
    containers the event source mapping may run at once (both parameters);
    the producer's scan shape is a parameter too."""
    consumer = resources["ConsumerFunction"]["Properties"]["Environment"]["Variables"]
    assert consumer["COMPREHEND_ACCOUNT_TPS"] == {"Ref": "ComprehendAccountTps"}
    assert consumer["MAX_CONSUMER_CONCURRENCY"] == {"Ref": "MaxConsumerConcurrency"}
    assert "COMPREHEND_MAX_TPS" not in consumer, "a per-container rate would not follow the concurrency"
    mapping = [
        e["Properties"] for e in resources["ConsumerFunction"]["Properties"]["Events"].values() if e["Type"] == "SQS"
    ]
    assert mapping and all(
        m["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConsumerConcurrency"} for m in mapping
    )
    config = (ROOT / "crates" / "consumer" / "src" / "config.rs").read_text()
    assert '"COMPREHEND_ACCOUNT_TPS"' in config and '"MAX_CONSUMER_CONCURRENCY"' in config
    producer = resources["ProducerFunction"]["Properties"]["Environment"]["Variables"]
    assert producer["SCAN_SEGMENTS"] == {"Ref": "ScanSegments"}
    assert producer["SCAN_PAGE_LIMIT"] == {"Ref": "ScanPageLimit"}
    assert template["Parameters"]["ScanPageLimit"]["Default"] == 0, "0 lets DynamoDB fill 1 MB pages"
    assert "read request units" in template["Parameters"]["ScanSegments"]["Description"]
