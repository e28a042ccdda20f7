"""The outbox and webhooks as synthesized: the dispatcher on the billing table's stream, the sender on the
webhook queue, the webhook secrets key and who may use it, their alarms and outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from billing import resources
from billing.resources import FunctionSpec
from tests.infra.support import Synthesized

pytestmark = pytest.mark.infra

KEY_ARN = {"Fn::GetAtt": [resources.WEBHOOK_SECRETS_KEY.logical_id, "Arn"]}
STREAM_ARN = {"Fn::GetAtt": [resources.BILLING_TABLE.logical_id, "StreamArn"]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def _function(synthesized: Synthesized, spec: FunctionSpec) -> tuple[str, dict[str, Any]]:
    (match,) = (
        (logical_id, fn)
        for logical_id, fn in synthesized.resources("AWS::Lambda::Function").items()
        if fn["Properties"]["Description"] == spec.description
    )
    return match


def _role_statements(synthesized: Synthesized, spec: FunctionSpec) -> list[dict[str, Any]]:
    """Every statement of the policies attached to the function's role (inline policies included)."""
    _, fn = _function(synthesized, spec)
    role_id = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    for inline in synthesized.resource(role_id)["Properties"].get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    assert all(statement["Effect"] == "Allow" for statement in statements)
    return statements


def _actions_on(statements: list[dict[str, Any]], resource: Any) -> set[str]:
    return {
        action
        for statement in statements
        if resource in _as_list(statement["Resource"])
        for action in _as_list(statement["Action"])
    }


def _mapping(synthesized: Synthesized, source_arn: dict[str, Any]) -> dict[str, Any]:
    (mapping,) = (
        esm["Properties"]
        for esm in synthesized.resources("AWS::Lambda::EventSourceMapping").values()
        if esm["Properties"]["EventSourceArn"] == source_arn
    )
    return mapping


def _alarm(synthesized: Synthesized, metric_name: str, dimension_value: Any) -> dict[str, Any]:
    (alarm,) = (
        alarm["Properties"]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric_name
        and dimension_value in [d["Value"] for d in alarm["Properties"].get("Dimensions", [])]
    )
    return alarm


# --- the billing table's stream and the dispatcher ----------------------------------------------------


def test_the_billing_table_streams_new_images_and_expires_items_at_expires_at(
    synthesized: Synthesized,
) -> None:
    properties = synthesized.resource(resources.BILLING_TABLE.logical_id)["Properties"]

    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert (resources.BILLING_TABLE.stream, resources.BILLING_TABLE.ttl_attribute) == (
        "NEW_IMAGE",
        "expires_at",
    )


def test_the_dispatcher_reads_the_billing_table_stream_filtered_to_new_outbox_events(
    synthesized: Synthesized,
) -> None:
    dispatcher_id, _ = _function(synthesized, resources.OUTBOX_DISPATCHER_FUNCTION)
    mapping = _mapping(synthesized, STREAM_ARN)

    assert mapping["FunctionName"] == {"Ref": dispatcher_id}
    (criterion,) = mapping["FilterCriteria"]["Filters"]
    assert json.loads(criterion["Pattern"]) == resources.OUTBOX_STREAM_FILTER
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == resources.OUTBOX_BATCH_SIZE


def test_a_failing_outbox_batch_is_bisected_retried_then_described_on_the_failures_queue(
    synthesized: Synthesized,
) -> None:
    mapping = _mapping(synthesized, STREAM_ARN)

    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRecordAgeInSeconds"] == resources.OUTBOX_MAX_RECORD_AGE_SECONDS
    assert mapping["MaximumRetryAttempts"] == resources.OUTBOX_RETRY_ATTEMPTS
    assert mapping["DestinationConfig"] == {
        "OnFailure": {"Destination": _arn(resources.OUTBOX_FAILURES_QUEUE.logical_id)}
    }


def test_the_dispatcher_may_read_the_stream_but_nothing_of_the_table_beyond_its_spec(
    synthesized: Synthesized,
) -> None:
    statements = _role_statements(synthesized, resources.OUTBOX_DISPATCHER_FUNCTION)
    billing = _arn(resources.BILLING_TABLE.logical_id)

    assert _actions_on(statements, billing) == {"dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"}
    assert _actions_on(statements, STREAM_ARN) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    }
    # No index, no other table: the events table (usage) and the idempotency records are not its business.
    mentioned = json.dumps(statements)
    for table in (resources.EVENTS_TABLE, resources.IDEMPOTENCY_TABLE):
        assert table.logical_id not in mentioned
    assert "/index/" not in mentioned
    assert _actions_on(statements, _arn(resources.OUTBOX_FAILURES_QUEUE.logical_id)) == {"sqs:SendMessage"}


def test_the_dispatcher_may_not_open_webhook_secrets(synthesized: Synthesized) -> None:
    statements = _role_statements(synthesized, resources.OUTBOX_DISPATCHER_FUNCTION)

    assert "kms:Decrypt" not in _actions_on(statements, KEY_ARN)
    assert resources.WEBHOOK_SECRETS_KEY.logical_id not in json.dumps(statements)


# --- the webhook queue and the sender -------------------------------------------------------------------


def test_the_sender_reads_the_webhook_queue_in_spec_batches_and_reports_item_failures(
    synthesized: Synthesized,
) -> None:
    sender_id, sender = _function(synthesized, resources.WEBHOOK_SENDER_FUNCTION)
    mapping = _mapping(synthesized, _arn(resources.WEBHOOK_QUEUE.logical_id))

    assert mapping["FunctionName"] == {"Ref": sender_id}
    assert mapping["BatchSize"] == resources.SENDER_BATCH_SIZE
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # AWS's advice for SQS event sources: the visibility timeout is six times the function's timeout.
    assert sender["Properties"]["Timeout"] == resources.SENDER_TIMEOUT_SECONDS
    assert resources.WEBHOOK_QUEUE.visibility_timeout_seconds >= 6 * resources.SENDER_TIMEOUT_SECONDS


def test_the_sender_is_not_in_a_vpc(synthesized: Synthesized) -> None:
    # It calls customers' endpoints on the internet: no VPC without egress may hold it.
    _, sender = _function(synthesized, resources.WEBHOOK_SENDER_FUNCTION)

    assert "VpcConfig" not in sender["Properties"]


def test_the_webhook_queue_is_a_standard_encrypted_queue_redriving_to_its_dead_letter_queue(
    synthesized: Synthesized,
) -> None:
    properties = synthesized.resource(resources.WEBHOOK_QUEUE.logical_id)["Properties"]
    data_key = _arn(synthesized.data_key_id())

    assert properties["RedrivePolicy"] == {
        "deadLetterTargetArn": _arn(resources.WEBHOOK_DLQ.logical_id),
        "maxReceiveCount": 5,
    }
    assert properties["KmsMasterKeyId"] == data_key
    assert properties["VisibilityTimeout"] == resources.WEBHOOK_QUEUE.visibility_timeout_seconds
    # Retry timers are per-message delays (up to 900 s): a standard queue with no queue-wide delay.
    assert "FifoQueue" not in properties
    assert properties.get("DelaySeconds", 0) == 0
    for spec in (resources.WEBHOOK_DLQ, resources.OUTBOX_FAILURES_QUEUE):
        kept = synthesized.resource(spec.logical_id)["Properties"]
        assert kept["MessageRetentionPeriod"] == spec.retention_seconds == 14 * 24 * 3600
        assert kept["KmsMasterKeyId"] == data_key
        assert "RedrivePolicy" not in kept


# --- the webhook secrets key ----------------------------------------------------------------------------


def test_the_webhook_secrets_key_rotates_outlives_the_stack_and_has_the_spec_alias(
    synthesized: Synthesized,
) -> None:
    spec = resources.WEBHOOK_SECRETS_KEY
    key = synthesized.resource(spec.logical_id)
    (alias,) = synthesized.resources("AWS::KMS::Alias").values()

    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["Properties"]["Description"] == spec.description
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert alias["Properties"]["TargetKeyId"] == KEY_ARN
    assert alias["Properties"]["AliasName"].startswith("alias/")
    assert alias["Properties"]["AliasName"].endswith(f"-{spec.alias_suffix}")  # prefixed by the stack's name


def test_the_sender_may_open_webhook_secrets_but_not_seal_them(synthesized: Synthesized) -> None:
    statements = _role_statements(synthesized, resources.WEBHOOK_SENDER_FUNCTION)

    assert _actions_on(statements, KEY_ARN) == {"kms:Decrypt"}


def test_the_api_may_seal_webhook_secrets_but_not_open_them(synthesized: Synthesized) -> None:
    statements = _role_statements(synthesized, resources.API_FUNCTION)

    assert _actions_on(statements, KEY_ARN) == {"kms:Encrypt"}


def test_webhook_secrets_are_sealed_and_opened_only_with_the_endpoint_encryption_context(
    synthesized: Synthesized,
) -> None:
    for spec in (resources.API_FUNCTION, resources.WEBHOOK_SENDER_FUNCTION):
        [grant] = [
            statement
            for statement in _role_statements(synthesized, spec)
            if KEY_ARN in _as_list(statement["Resource"])
        ]
        assert grant["Condition"] == {
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["tenant_id", "endpoint_id"]},
            "Null": {"kms:EncryptionContextKeys": "false"},
        }


def test_no_other_role_of_the_stack_mentions_the_webhook_secrets_key(synthesized: Synthesized) -> None:
    allowed_roles = {
        _function(synthesized, spec)[1]["Properties"]["Role"]["Fn::GetAtt"][0]
        for spec in (resources.API_FUNCTION, resources.WEBHOOK_SENDER_FUNCTION)
    }
    mentioning = {
        role["Ref"]
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if resources.WEBHOOK_SECRETS_KEY.logical_id in json.dumps(policy["Properties"]["PolicyDocument"])
        for role in policy["Properties"]["Roles"]
    }
    inline = {
        logical_id
        for logical_id, role in synthesized.resources("AWS::IAM::Role").items()
        if resources.WEBHOOK_SECRETS_KEY.logical_id in json.dumps(role["Properties"].get("Policies", []))
    }

    assert mentioning == allowed_roles
    assert not inline


@pytest.mark.parametrize(
    "spec", [resources.API_FUNCTION, resources.WEBHOOK_SENDER_FUNCTION], ids=lambda spec: spec.name
)
def test_the_key_users_get_the_key_arn_and_no_one_else_does(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    env_var = resources.WEBHOOK_SECRETS_KEY.env_var
    _, fn = _function(synthesized, spec)

    assert fn["Properties"]["Environment"]["Variables"][env_var] == KEY_ARN
    others = [
        other
        for other in synthesized.resources("AWS::Lambda::Function").values()
        if other["Properties"]["Description"]
        not in {resources.API_FUNCTION.description, resources.WEBHOOK_SENDER_FUNCTION.description}
    ]
    assert all(env_var not in other["Properties"]["Environment"]["Variables"] for other in others)


@pytest.mark.parametrize(
    "spec",
    [resources.OUTBOX_DISPATCHER_FUNCTION, resources.WEBHOOK_SENDER_FUNCTION],
    ids=lambda spec: spec.name,
)
def test_the_outbox_functions_get_exactly_the_environment_of_their_specs(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    _, fn = _function(synthesized, spec)
    variables = fn["Properties"]["Environment"]["Variables"]

    # Their settings (retry schedule, loopback switch) are not set by the deployment: the defaults hold.
    assert set(variables) == {
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        *spec.resource_env_vars,
    }


def test_no_function_may_send_webhooks_to_loopback_addresses(synthesized: Synthesized) -> None:
    # The local runtime's switch; in AWS webhook URLs are https to public addresses only.
    for logical_id, fn in synthesized.resources("AWS::Lambda::Function").items():
        assert "BILLING_WEBHOOK_ALLOW_LOOPBACK" not in fn["Properties"]["Environment"]["Variables"], (
            logical_id
        )


# --- alarms and outputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", [resources.WEBHOOK_DLQ, resources.OUTBOX_FAILURES_QUEUE], ids=lambda s: s.logical_id
)
def test_a_message_in_the_webhook_dead_letter_or_outbox_failures_queue_raises_an_alarm(
    synthesized: Synthesized, spec: resources.QueueSpec
) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    alarm = _alarm(
        synthesized, "ApproximateNumberOfMessagesVisible", {"Fn::GetAtt": [spec.logical_id, "QueueName"]}
    )

    assert alarm["Namespace"] == "AWS/SQS"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_dead_lettered_webhook_deliveries_raise_an_alarm(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    alarm = _alarm(synthesized, "WebhookDeliveriesDeadLettered", "usage-billing")

    assert alarm["Namespace"] == "UsageBilling"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "usage-billing"}]
    assert (alarm["Statistic"], alarm["Period"]) == ("Sum", 300)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_a_dispatcher_behind_the_stream_raises_an_alarm(synthesized: Synthesized) -> None:
    dispatcher_id, _ = _function(synthesized, resources.OUTBOX_DISPATCHER_FUNCTION)
    alarm = _alarm(synthesized, "IteratorAge", {"Ref": dispatcher_id})

    assert alarm["Namespace"] == "AWS/Lambda"
    assert alarm["Statistic"] == "Maximum"
    # Milliseconds: five minutes behind.
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 5 * 60 * 1000)


@pytest.mark.parametrize(
    "spec",
    [resources.OUTBOX_DISPATCHER_FUNCTION, resources.WEBHOOK_SENDER_FUNCTION],
    ids=lambda spec: spec.name,
)
def test_dispatcher_and_sender_errors_raise_alarms(synthesized: Synthesized, spec: FunctionSpec) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    function_id, _ = _function(synthesized, spec)
    alarm = _alarm(synthesized, "Errors", {"Ref": function_id})

    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_the_stack_outputs_the_webhook_queues_and_the_secrets_key(synthesized: Synthesized) -> None:
    outputs = synthesized.template["Outputs"]

    assert outputs["WebhookQueueUrl"]["Value"] == {"Ref": resources.WEBHOOK_QUEUE.logical_id}
    assert outputs["WebhookDeadLetterQueueUrl"]["Value"] == {"Ref": resources.WEBHOOK_DLQ.logical_id}
    assert outputs["OutboxDispatchFailuresQueueUrl"]["Value"] == {
        "Ref": resources.OUTBOX_FAILURES_QUEUE.logical_id
    }
    assert outputs["WebhookSecretsKeyArn"]["Value"] == KEY_ARN


BILLING_ARN = {"Fn::GetAtt": [resources.BILLING_TABLE.logical_id, "Arn"]}
WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}


@pytest.mark.parametrize(
    ("spec", "partitions"),
    [
        (resources.INGEST_CONSUMER_FUNCTION, ["T#*#OUTBOX#*", "T#*#WHEVENT#*"]),
        (resources.OUTBOX_DISPATCHER_FUNCTION, ["T#*#WHDELIVERY#*", "T#*#WHLANE#*"]),
        (resources.WEBHOOK_SENDER_FUNCTION, ["T#*#WEBHOOKS", "T#*#WHDELIVERY#*", "T#*#WHLANE#*"]),
    ],
    ids=lambda value: getattr(value, "name", ""),
)
def test_the_webhook_writers_may_write_only_their_own_items_of_the_billing_table(
    synthesized: Synthesized, spec: FunctionSpec, partitions: list[str]
) -> None:
    writes = [
        statement
        for statement in _role_statements(synthesized, spec)
        if BILLING_ARN in _as_list(statement["Resource"]) and WRITES & set(_as_list(statement["Action"]))
    ]

    assert writes
    for statement in writes:
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": partitions}}


def test_the_api_deletes_webhook_endpoints_and_no_other_billing_item(synthesized: Synthesized) -> None:
    [delete] = [
        statement
        for statement in _role_statements(synthesized, resources.API_FUNCTION)
        if BILLING_ARN in _as_list(statement["Resource"])
        and "dynamodb:DeleteItem" in _as_list(statement["Action"])
    ]

    assert _as_list(delete["Action"]) == ["dynamodb:DeleteItem"]
    assert delete["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["T#*#WEBHOOKS"]}}
