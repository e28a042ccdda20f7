"""Each function of the stack against its spec (`billing.resources.FUNCTIONS`): code, limits, environment
and grants come from the spec, and nothing the spec does not declare reaches the function."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from billing import resources
from billing.resources import Access, FunctionSpec, KeyAccess, QueueAccess, StateMachineAccess, TableAccess
from infra.config import FUNCTIONS_DIR
from tests.infra.support import Synthesized

pytestmark = pytest.mark.infra

POWERTOOLS = {"POWERTOOLS_SERVICE_NAME": "usage-billing", "POWERTOOLS_METRICS_NAMESPACE": "UsageBilling"}
# What the deployment sets from context by default (cdk.json sets none of these).
DEPLOYMENT_SETTINGS = {
    "BILLING_GRACE_SECONDS": "86400",
    "BILLING_SELLER_COUNTRY": "US",
    "BILLING_SELLER_TAX_REGISTRATIONS": "",
}
SPECS = pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda spec: spec.name)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _function(synthesized: Synthesized, spec: FunctionSpec) -> tuple[str, dict[str, Any]]:
    (match,) = (
        (logical_id, fn)
        for logical_id, fn in synthesized.resources("AWS::Lambda::Function").items()
        if fn["Properties"]["Description"] == spec.description
    )
    return match


def _grants(synthesized: Synthesized, spec: FunctionSpec) -> dict[str, set[str]]:
    """{action: resources (as JSON)} of every policy attached to the function's role."""
    _, fn = _function(synthesized, spec)
    role = {"Ref": fn["Properties"]["Role"]["Fn::GetAtt"][0]}
    grants: dict[str, set[str]] = {}
    for policy in synthesized.resources("AWS::IAM::Policy").values():
        if role not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"]):
                grants.setdefault(action, set()).update(
                    json.dumps(r) for r in _as_list(statement["Resource"])
                )
    return grants


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


# What a function's trigger adds beyond its spec (data-plane actions only: the event source mapping reads
# the table's stream and sends failed batches' descriptions to its on-failure queue).
TRIGGER_GRANTS: dict[str, dict[str, set[str]]] = {
    resources.OUTBOX_DISPATCHER_FUNCTION.name: {
        **{
            action: {json.dumps({"Fn::GetAtt": [resources.BILLING_TABLE.logical_id, "StreamArn"]})}
            for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
        },
        # ListStreams has no resource-level permissions.
        "dynamodb:ListStreams": {json.dumps("*")},
        "sqs:SendMessage": {json.dumps(_arn(resources.OUTBOX_FAILURES_QUEUE.logical_id))},
    },
}


def _declared_grants(spec: FunctionSpec) -> dict[str, set[str]]:
    """{action: resources (as JSON)} the spec's access declarations mean, as the template writes them."""
    declared: dict[str, set[str]] = {}

    def add(action: str, resource: Any) -> None:
        declared.setdefault(action, set()).add(json.dumps(resource))

    for access in spec.access:
        if isinstance(access, TableAccess):
            table = _arn(access.table.logical_id)
            for action in access.actions:
                add(action, table)
            for index in access.indexes:
                add("dynamodb:Query", {"Fn::Join": ["", [table, f"/index/{index}"]]})
        elif isinstance(access, QueueAccess):
            for action in access.actions:
                add(action, _arn(access.queue.logical_id))
        elif isinstance(access, KeyAccess):
            for key_action in access.actions:
                add(key_action, _arn(access.key.logical_id))
        elif isinstance(access, StateMachineAccess):
            machine = access.state_machine.logical_id
            executions = {
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
                        {"Fn::GetAtt": [machine, "Name"]},
                        ":*",
                    ],
                ]
            }
            for action in access.actions:
                add(action, executions if action == "states:DescribeExecution" else {"Ref": machine})
    return declared


# --- code and limits ----------------------------------------------------------------------------------


@SPECS
def test_each_function_has_the_handler_timeout_memory_and_description_of_its_spec(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    _, fn = _function(synthesized, spec)
    properties = fn["Properties"]

    assert properties["Handler"] == spec.handler == "handler.handler"
    assert properties["Timeout"] == spec.timeout_seconds
    assert properties["MemorySize"] == spec.memory_mb


@SPECS
def test_each_function_runs_the_code_of_its_spec_folder(synthesized: Synthesized, spec: FunctionSpec) -> None:
    _, fn = _function(synthesized, spec)
    asset_hash = fn["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    staged = Path(synthesized.outdir) / f"asset.{asset_hash}"

    assert (staged / "handler.py").read_text() == (FUNCTIONS_DIR / spec.folder / "handler.py").read_text()


# --- environment ----------------------------------------------------------------------------------------


@SPECS
def test_each_function_gets_exactly_the_environment_of_its_spec(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    _, fn = _function(synthesized, spec)
    variables = fn["Properties"]["Environment"]["Variables"]

    expected: dict[str, Any] = {
        **POWERTOOLS,
        **{access.env_var: _env_value(access) for access in spec.access},
        **{name: value for name, value in DEPLOYMENT_SETTINGS.items() if name in spec.settings},
    }
    assert variables == expected
    assert set(variables) - set(POWERTOOLS) <= set(spec.env_vars)


def _env_value(access: Access) -> dict[str, Any]:
    """A table's Ref is its name, a queue's its URL, a state machine's its ARN; a key's ARN is GetAtt."""
    if isinstance(access, TableAccess):
        return {"Ref": access.table.logical_id}
    if isinstance(access, QueueAccess):
        return {"Ref": access.queue.logical_id}
    if isinstance(access, KeyAccess):
        return _arn(access.key.logical_id)
    return {"Ref": access.state_machine.logical_id}


def test_the_authorizer_gets_the_billing_table_and_nothing_else_of_the_system(
    synthesized: Synthesized,
) -> None:
    _, fn = _function(synthesized, resources.AUTHORIZER_FUNCTION)
    variables = fn["Properties"]["Environment"]["Variables"]

    assert variables == {
        **POWERTOOLS,
        resources.BILLING_TABLE.env_var: {"Ref": resources.BILLING_TABLE.logical_id},
    }
    for absent in (
        resources.EVENTS_TABLE,
        resources.IDEMPOTENCY_TABLE,
        resources.INGEST_QUEUE,
        resources.INGEST_DLQ,
        resources.CYCLE_CLOSE_STATE_MACHINE,
        resources.WEBHOOK_QUEUE,
        resources.WEBHOOK_SECRETS_KEY,
    ):
        assert absent.env_var not in variables


def test_only_the_cycle_close_function_gets_the_billing_settings_of_the_deployment(
    synthesized: Synthesized,
) -> None:
    for logical_id, fn in synthesized.resources("AWS::Lambda::Function").items():
        variables = fn["Properties"]["Environment"]["Variables"]
        if fn["Properties"]["Description"] == resources.CYCLE_CLOSE_FUNCTION.description:
            assert {name: variables[name] for name in DEPLOYMENT_SETTINGS} == DEPLOYMENT_SETTINGS
        else:
            assert not set(DEPLOYMENT_SETTINGS) & set(variables), logical_id


def test_every_setting_the_deployment_sets_is_read_by_some_function() -> None:
    import aws_cdk as cdk

    from infra.constructs.cycle_close import function_settings_from_context

    deployed = function_settings_from_context(cdk.App().node)

    assert deployed == DEPLOYMENT_SETTINGS
    assert set(deployed) <= {name for spec in resources.FUNCTIONS for name in spec.settings}


# --- grants ---------------------------------------------------------------------------------------------


@SPECS
def test_each_function_may_do_exactly_what_its_spec_declares(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    grants = _grants(synthesized, spec)
    expected = _declared_grants(spec)
    for action, found in TRIGGER_GRANTS.get(spec.name, {}).items():
        expected[action] = expected.get(action, set()) | found

    def data_plane(action: str) -> bool:
        return action.startswith(("dynamodb:", "states:", "sns:", "s3:")) or action == "sqs:SendMessage"

    # Keys (the data key, the keys of their own) are checked by the key tests below.
    assert {action: found for action, found in grants.items() if data_plane(action)} == {
        action: found for action, found in expected.items() if data_plane(action)
    }


@SPECS
def test_only_functions_that_write_may_encrypt_with_the_data_key(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    grants = _grants(synthesized, spec)
    data_key = json.dumps(_arn(synthesized.data_key_id()))
    on_data_key = {action for action, found in grants.items() if data_key in found}
    readers = {resources.AUTHORIZER_FUNCTION.name}

    assert "kms:Decrypt" in on_data_key
    assert ("kms:Encrypt" in on_data_key) is (spec.name not in readers)
    assert ("kms:GenerateDataKey" in on_data_key) is (spec.name not in readers)


@SPECS
def test_each_function_may_use_the_keys_of_its_own_exactly_as_its_spec_declares(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    grants = _grants(synthesized, spec)

    for key in resources.KEYS:
        arn = json.dumps(_arn(key.logical_id))
        declared = {
            action
            for access in spec.access
            if isinstance(access, KeyAccess) and access.key == key
            for action in access.actions
        }
        assert {action for action, found in grants.items() if arn in found} == declared, key.logical_id


def test_the_consumer_may_get_customers_from_the_billing_table_and_decrypt_them(
    synthesized: Synthesized,
) -> None:
    grants = _grants(synthesized, resources.INGEST_CONSUMER_FUNCTION)

    assert grants["dynamodb:GetItem"] == {json.dumps(_arn(resources.BILLING_TABLE.logical_id))}
    assert "kms:Decrypt" in grants
    # Its queue is read by the event source mapping only, through CDK's grant on that queue.
    queue = json.dumps(_arn(resources.INGEST_QUEUE.logical_id))
    assert grants["sqs:ReceiveMessage"] == grants["sqs:DeleteMessage"] == {queue}


# --- the registry -------------------------------------------------------------------------------------


def test_a_function_built_before_a_resource_of_its_spec_fails_with_the_resource_named() -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_lambda as lambda_

    from infra.constructs.function import BillingFunction
    from infra.constructs.registry import ResourceRegistry

    stack = cdk.Stack(cdk.App(), "Lonely")
    registry = ResourceRegistry(kms.Key(stack, "Key"), {})
    layer = lambda_.LayerVersion.from_layer_version_arn(
        stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:billing:1"
    )

    with pytest.raises(LookupError, match=resources.BILLING_TABLE.logical_id):
        BillingFunction(
            stack, "Authorizer", spec=resources.AUTHORIZER_FUNCTION, layer=layer, registry=registry
        )
