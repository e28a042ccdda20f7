"""Cycle close in the stack: the shared workflow, scheduled, observed and least-privileged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billing import resources
from billing.workflows.cycle_close import TRANSIENT_ERRORS, cycle_close_definition
from tests.infra.support import Synthesized

pytestmark = pytest.mark.infra

FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:cycle-close-under-test"
STATE_MACHINE_REF = {"Ref": resources.CYCLE_CLOSE_STATE_MACHINE.logical_id}
ITEM_TASKS = {"RateUsage", "ComputeTax", "FinalizeInvoice"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _state_machine(synthesized: Synthesized) -> dict[str, Any]:
    (state_machine,) = synthesized.resources("AWS::StepFunctions::StateMachine").values()
    assert synthesized.resource(resources.CYCLE_CLOSE_STATE_MACHINE.logical_id) is state_machine
    return state_machine["Properties"]


def _function(synthesized: Synthesized, logical_prefix: str) -> tuple[str, dict[str, Any]]:
    (match,) = (
        (logical_id, fn)
        for logical_id, fn in synthesized.resources("AWS::Lambda::Function").items()
        if logical_id.startswith(logical_prefix)
    )
    return match


def _resolve_definition(synthesized: Synthesized, function_arn: str) -> dict[str, Any]:
    """The synthesized ASL with the function's ARN token replaced by `function_arn`; any other token fails."""
    function_id, _ = _function(synthesized, "CycleCloseFunction")
    definition = _state_machine(synthesized)["DefinitionString"]
    separator, parts = definition["Fn::Join"]
    assert separator == ""
    rendered = ""
    for part in parts:
        if isinstance(part, str):
            rendered += part
        else:
            assert part == {"Fn::GetAtt": [function_id, "Arn"]}, part
            rendered += function_arn
    return json.loads(rendered)


def _all_states(states: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every state, the Map's item processor included."""
    found = dict(states)
    for state in states.values():
        if "ItemProcessor" in state:
            found |= _all_states(state["ItemProcessor"]["States"])
    return found


def _role_statements(synthesized: Synthesized, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synthesized.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _grants(statements: list[dict[str, Any]]) -> dict[str, list[Any]]:
    grants: dict[str, list[Any]] = {}
    for statement in statements:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return grants


def _execution_arn(separator: str) -> dict[str, Any]:
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":states:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":execution:",
                {"Fn::GetAtt": [resources.CYCLE_CLOSE_STATE_MACHINE.logical_id, "Name"]},
                f"{separator}*",
            ],
        ]
    }


# --- the state machine --------------------------------------------------------------------------------


def test_the_deployed_definition_is_the_shared_workflow_with_the_function_arn(
    synthesized: Synthesized,
) -> None:
    # The local runtime hands cycle_close_definition(...) to moto: CDK and local cannot drift apart.
    assert _resolve_definition(synthesized, FUNCTION_ARN) == cycle_close_definition(FUNCTION_ARN)


def test_every_task_retries_transient_errors_and_each_item_task_catches_to_subscription_failed(
    synthesized: Synthesized,
) -> None:
    states = _all_states(_resolve_definition(synthesized, FUNCTION_ARN)["States"])
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}

    assert set(tasks) >= ITEM_TASKS
    for name, task in tasks.items():
        assert task["Parameters"]["FunctionName"] == FUNCTION_ARN, name
        (retry,) = task["Retry"]
        assert retry["ErrorEquals"] == TRANSIENT_ERRORS, name
        assert retry["MaxAttempts"] > 1, name
        assert retry["BackoffRate"] > 1, name
    for name in ITEM_TASKS:
        (catch,) = tasks[name]["Catch"]
        assert (catch["ErrorEquals"], catch["Next"]) == (["States.ALL"], "SubscriptionFailed"), name
    assert states["SubscriptionFailed"]["Type"] == "Pass"


def test_the_map_is_distributed_with_bounded_concurrency(synthesized: Synthesized) -> None:
    states = _resolve_definition(synthesized, FUNCTION_ARN)["States"]
    (cycle_map,) = (state for state in states.values() if state["Type"] == "Map")

    assert cycle_map["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert 0 < cycle_map["MaxConcurrency"] <= 100


def test_the_state_machine_is_standard_traced_and_logs_all_without_execution_data(
    synthesized: Synthesized,
) -> None:
    properties = _state_machine(synthesized)
    key_id = synthesized.data_key_id()
    (destination,) = properties["LoggingConfiguration"]["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synthesized.resource(log_group_id)["Properties"]

    assert properties["StateMachineType"] == "STANDARD"
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    # Invoice data stays out of the logs.
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert "StateMachineName" not in properties
    assert log_group["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert log_group["LogGroupName"].startswith("/aws/vendedlogs/states/")
    # The log group is the state machine's alone.
    functions = synthesized.resources("AWS::Lambda::Function").values()
    assert all(fn["Properties"]["LoggingConfig"]["LogGroup"] != {"Ref": log_group_id} for fn in functions)


def test_cloudwatch_logs_may_use_the_data_key_for_the_execution_log_group_only(
    synthesized: Synthesized,
) -> None:
    key = synthesized.resource(synthesized.data_key_id())
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (logs,) = (s for s in statements if "logs." in json.dumps(s.get("Principal", {})))
    (log_group,) = (
        lg["Properties"]
        for lg in synthesized.resources("AWS::Logs::LogGroup").values()
        if "KmsKeyId" in lg["Properties"]
    )

    _, arn_parts = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Join"]
    assert arn_parts[-1] == f":log-group:{log_group['LogGroupName']}"
    assert not any("*" in action for action in _as_list(logs["Action"]))


def test_the_state_machine_may_invoke_only_the_cycle_close_function_and_run_its_own_children(
    synthesized: Synthesized,
) -> None:
    function_id, _ = _function(synthesized, "CycleCloseFunction")
    role_id = _state_machine(synthesized)["RoleArn"]["Fn::GetAtt"][0]
    grants = _grants(_role_statements(synthesized, role_id))
    function_arn = {"Fn::GetAtt": [function_id, "Arn"]}

    assert grants["lambda:InvokeFunction"] == [function_arn, {"Fn::Join": ["", [function_arn, ":*"]]}]
    assert grants["states:StartExecution"] == [STATE_MACHINE_REF]
    for action in ("states:DescribeExecution", "states:StopExecution"):
        assert sorted(map(json.dumps, grants[action])) == sorted(
            json.dumps(_execution_arn(separator)) for separator in (":", "/")
        )
    assert grants["states:RedriveExecution"] == [_execution_arn("/")]
    assert {a for a in grants if a.startswith("states:")} == {
        "states:StartExecution",
        "states:DescribeExecution",
        "states:StopExecution",
        "states:RedriveExecution",
    }
    # The self-referencing grants live outside the default policy the state machine depends on.
    depends_on = synthesized.resource(resources.CYCLE_CLOSE_STATE_MACHINE.logical_id)["DependsOn"]
    for policy_id, policy in synthesized.resources("AWS::IAM::Policy").items():
        if resources.CYCLE_CLOSE_STATE_MACHINE.logical_id in json.dumps(
            policy["Properties"]["PolicyDocument"]
        ):
            assert policy_id not in depends_on


# --- the function -------------------------------------------------------------------------------------


def test_the_cycle_close_function_gets_its_tables_the_grace_window_and_its_timeout(
    synthesized: Synthesized,
) -> None:
    _, fn = _function(synthesized, "CycleCloseFunction")
    properties = fn["Properties"]
    variables = properties["Environment"]["Variables"]

    assert properties["Timeout"] == resources.CYCLE_CLOSE_TIMEOUT_SECONDS
    assert variables["BILLING_GRACE_SECONDS"] == "86400"
    for spec in (resources.BILLING_TABLE, resources.EVENTS_TABLE):
        assert variables[spec.env_var] == {"Ref": spec.logical_id}
    # Neither the idempotency table nor the queues: it uses none of them.
    for spec in (resources.IDEMPOTENCY_TABLE, *resources.QUEUES, resources.CYCLE_CLOSE_STATE_MACHINE):
        assert spec.env_var not in variables


def test_the_cycle_close_function_may_write_billing_and_read_events(synthesized: Synthesized) -> None:
    _, fn = _function(synthesized, "CycleCloseFunction")
    grants = _grants(_role_statements(synthesized, fn["Properties"]["Role"]["Fn::GetAtt"][0]))
    billing = {"Fn::GetAtt": [resources.BILLING_TABLE.logical_id, "Arn"]}
    events = {"Fn::GetAtt": [resources.EVENTS_TABLE.logical_id, "Arn"]}

    def index(table: dict[str, Any], name: str) -> dict[str, Any]:
        return {"Fn::Join": ["", [table, f"/index/{name}"]]}

    for action in (
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem",
    ):
        assert grants[action] == [billing], action
    assert sorted(map(json.dumps, grants["dynamodb:GetItem"])) == sorted(map(json.dumps, [billing, events]))
    assert sorted(map(json.dumps, grants["dynamodb:Query"])) == sorted(
        map(json.dumps, [billing, index(billing, "gsi1"), events, index(events, "by_time")])
    )
    assert {a for a in grants if a.startswith(("dynamodb:", "sqs:", "states:", "sns:"))} == {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:Query",
    }
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(grants)


def test_the_grace_window_comes_from_context(tmp_path: Path) -> None:
    from infra.app import SKIP_BUNDLING, build_app

    assembly = build_app({**SKIP_BUNDLING, "billing_grace_seconds": 3600}, outdir=str(tmp_path)).synth()

    (stack,) = assembly.stacks
    (fn,) = (
        resource
        for logical_id, resource in stack.template["Resources"].items()
        if logical_id.startswith("CycleCloseFunction") and resource["Type"] == "AWS::Lambda::Function"
    )
    assert fn["Properties"]["Environment"]["Variables"]["BILLING_GRACE_SECONDS"] == "3600"


# --- the schedule -------------------------------------------------------------------------------------


def test_the_schedule_starts_the_state_machine_at_the_spec_rate_with_its_scheduled_time(
    synthesized: Synthesized,
) -> None:
    (schedule,) = synthesized.resources("AWS::Scheduler::Schedule").values()
    properties = schedule["Properties"]
    target = properties["Target"]
    (queue_id,) = (
        logical_id
        for logical_id in synthesized.resources("AWS::SQS::Queue")
        if logical_id.startswith("CycleCloseScheduleDeadLetterQueue")
    )

    assert properties["ScheduleExpression"] == resources.CYCLE_CLOSE_SCHEDULE
    assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert properties.get("State", "ENABLED") == "ENABLED"
    assert target["Arn"] == STATE_MACHINE_REF
    assert json.loads(target["Input"]) == {"source": "schedule", "as_of": "<aws.scheduler.scheduled-time>"}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 3600


def test_the_scheduler_role_may_only_start_this_state_machine_and_dead_letter(
    synthesized: Synthesized,
) -> None:
    (schedule,) = synthesized.resources("AWS::Scheduler::Schedule").values()
    target = schedule["Properties"]["Target"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = synthesized.resource(role_id)["Properties"]
    grants = _grants(_role_statements(synthesized, role_id))

    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert grants["states:StartExecution"] == [STATE_MACHINE_REF]
    assert grants["sqs:SendMessage"] == [target["DeadLetterConfig"]["Arn"]]
    assert set(grants) == {
        "states:StartExecution",
        "sqs:SendMessage",
        "kms:Decrypt",
        "kms:DescribeKey",
        "kms:Encrypt",
        "kms:GenerateDataKey",
    }


def test_the_schedule_dead_letter_queue_is_encrypted_and_refuses_requests_without_tls(
    synthesized: Synthesized,
) -> None:
    key_id = synthesized.data_key_id()
    (queue_id, queue) = next(
        (logical_id, queue)
        for logical_id, queue in synthesized.resources("AWS::SQS::Queue").items()
        if logical_id.startswith("CycleCloseScheduleDeadLetterQueue")
    )
    (policy,) = (
        policy["Properties"]
        for policy in synthesized.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
    )

    assert queue["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["PolicyDocument"]["Statement"]
    )


# --- the api ------------------------------------------------------------------------------------------


def test_the_api_function_gets_the_state_machine_arn_and_may_only_start_and_describe_runs(
    synthesized: Synthesized,
) -> None:
    _, api = _function(synthesized, "ApiHandler")
    _, authorizer = _function(synthesized, "ApiAuthorizer")
    grants = _grants(_role_statements(synthesized, api["Properties"]["Role"]["Fn::GetAtt"][0]))

    env_var = resources.CYCLE_CLOSE_STATE_MACHINE.env_var
    assert api["Properties"]["Environment"]["Variables"][env_var] == STATE_MACHINE_REF
    assert env_var not in authorizer["Properties"]["Environment"]["Variables"]
    assert {a for a in grants if a.startswith("states:")} == {
        "states:StartExecution",
        "states:DescribeExecution",
    }
    assert grants["states:StartExecution"] == [STATE_MACHINE_REF]
    assert grants["states:DescribeExecution"] == [_execution_arn(":")]


# --- observability, outputs ---------------------------------------------------------------------------


def _alarms_on(synthesized: Synthesized, metric_name: str) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric_name
    ]


@pytest.mark.parametrize("metric_name", ["ExecutionsFailed", "ExecutionsTimedOut"])
def test_failed_or_timed_out_billing_runs_raise_an_alarm_to_the_topic(
    synthesized: Synthesized, metric_name: str
) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    (alarm,) = _alarms_on(synthesized, metric_name)

    assert alarm["Namespace"] == "AWS/States"
    assert alarm["Dimensions"] == [{"Name": "StateMachineArn", "Value": STATE_MACHINE_REF}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_cycle_close_function_errors_and_dead_lettered_starts_raise_alarms(synthesized: Synthesized) -> None:
    (topic_id,) = synthesized.resources("AWS::SNS::Topic")
    function_id, _ = _function(synthesized, "CycleCloseFunction")
    (queue_id,) = (
        logical_id
        for logical_id in synthesized.resources("AWS::SQS::Queue")
        if logical_id.startswith("CycleCloseScheduleDeadLetterQueue")
    )

    (errors,) = (
        alarm
        for alarm in _alarms_on(synthesized, "Errors")
        if alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": function_id}}]
    )
    (dead_letters,) = (
        alarm
        for alarm in _alarms_on(synthesized, "ApproximateNumberOfMessagesVisible")
        if alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    )
    for alarm in (errors, dead_letters):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_the_stack_outputs_the_state_machine_arn(synthesized: Synthesized) -> None:
    assert synthesized.template["Outputs"]["CycleCloseStateMachineArn"]["Value"] == STATE_MACHINE_REF
