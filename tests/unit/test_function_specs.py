"""The function specs of `billing.resources`, and the local runtime built from them: the same names,
handlers and timeouts as the CDK app deploys, and worker processes that see only their spec's settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from billing import resources
from billing.resources import FunctionSpec, TableAccess
from local.lambdas import LambdaFunction, ProcessInvoker, function_environment, resolve_handler
from local.runtime import FUNCTION_SPECS, Handlers, LocalRuntime

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
SPECS = pytest.mark.parametrize("spec", resources.FUNCTIONS, ids=lambda spec: spec.name)

# What the runtime's process holds once started: every function's settings, its own variables, the
# platform's and the developer's shell.
RUNTIME_ENV = {
    resources.EVENTS_TABLE.env_var: "billing-events",
    resources.BILLING_TABLE.env_var: "billing-main",
    resources.IDEMPOTENCY_TABLE.env_var: "billing-idempotency",
    resources.INGEST_QUEUE.env_var: "http://127.0.0.1:4566/123456789012/billing-ingest",
    resources.INGEST_DLQ.env_var: "http://127.0.0.1:4566/123456789012/billing-ingest-dlq",
    resources.CYCLE_CLOSE_STATE_MACHINE.env_var: "arn:aws:states:us-east-1:123456789012:stateMachine:cc",
    resources.WEBHOOK_QUEUE.env_var: "http://127.0.0.1:4566/123456789012/billing-webhooks",
    resources.WEBHOOK_DLQ.env_var: "http://127.0.0.1:4566/123456789012/billing-webhooks-dlq",
    resources.OUTBOX_FAILURES_QUEUE.env_var: "http://127.0.0.1:4566/123456789012/billing-outbox-failures",
    resources.WEBHOOK_SECRETS_KEY.env_var: "arn:aws:kms:us-east-1:123456789012:key/0000",
    "BILLING_WEBHOOK_RETRY_SCHEDULE": "1,2,4",
    "BILLING_WEBHOOK_ALLOW_LOOPBACK": "true",
    "BILLING_GRACE_SECONDS": "0",
    "BILLING_SELLER_TAX_REGISTRATIONS": "US-NY",
    "EVENT_SHARDS": "8",
    "BILLING_LOCAL_ADMIN_KEY": "e2e_admin_key_0123456789abcdefghijklmnop",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "MOTO_PORT": "4566",
    "POWERTOOLS_SERVICE_NAME": "usage-billing",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "PATH": "/usr/bin:/bin",
    "PYTHONPATH": "/work",
    "HOME": "/home/dev",
    "EDITOR": "vi",
}
PROCESS_VARIABLES = {
    "AWS_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MOTO_PORT",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_TRACE_DISABLED",
    "PATH",
    "PYTHONPATH",
    "HOME",
}


def echo_environment(event: Any, context: Any) -> dict[str, str]:
    """A handler run in a worker process: what the process was given."""
    return dict(os.environ)


# --- the specs ----------------------------------------------------------------------------------------


def test_there_is_one_spec_per_function_folder_and_the_names_are_unique() -> None:
    folders = {path.parent.name for path in FUNCTIONS_DIR.glob("*/handler.py")}

    assert {spec.folder for spec in resources.FUNCTIONS} == folders
    assert len({spec.name for spec in resources.FUNCTIONS}) == len(resources.FUNCTIONS)


@SPECS
def test_the_local_handler_is_the_handler_function_of_the_spec_folder(spec: FunctionSpec) -> None:
    handler = resolve_handler(spec.local_handler)

    assert spec.handler == "handler.handler"  # the folder is the root of the Lambda code asset
    assert handler.__module__ == f"functions.{spec.folder}.handler"
    assert spec.local_handler == f"functions.{spec.folder}.handler:handler"


def test_the_cycle_close_function_is_named_as_the_state_machine_tasks_call_it() -> None:
    assert resources.CYCLE_CLOSE_FUNCTION.name == resources.CYCLE_CLOSE_FUNCTION_NAME
    assert resources.CYCLE_CLOSE_FUNCTION.timeout_seconds == resources.CYCLE_CLOSE_TIMEOUT_SECONDS
    assert resources.INGEST_CONSUMER_FUNCTION.timeout_seconds == resources.CONSUMER_TIMEOUT_SECONDS


def test_an_access_to_an_index_the_table_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="by_time"):
        TableAccess(resources.BILLING_TABLE, ("dynamodb:Query",), indexes=("by_time",))


def test_the_env_vars_of_a_spec_are_its_resources_then_its_settings_each_once() -> None:
    spec = resources.CYCLE_CLOSE_FUNCTION

    assert spec.resource_env_vars == (resources.BILLING_TABLE.env_var, resources.EVENTS_TABLE.env_var)
    assert spec.env_vars == (*spec.resource_env_vars, *spec.settings)


# --- the local runtime --------------------------------------------------------------------------------


def test_the_local_runtime_has_one_function_per_spec() -> None:
    assert sorted(FUNCTION_SPECS.values(), key=lambda spec: spec.name) == sorted(
        resources.FUNCTIONS, key=lambda spec: spec.name
    )


def test_the_local_runtime_builds_its_functions_from_the_specs() -> None:
    functions = LocalRuntime(timeout_scale=1.0).build_functions()

    for name, spec in FUNCTION_SPECS.items():
        assert functions[name] == LambdaFunction(spec.name, spec.local_handler, spec.timeout_seconds), name


def test_the_local_runtime_scales_the_spec_timeouts_and_keeps_stand_in_handlers() -> None:
    def stand_in(event: Any, context: Any) -> None:
        return None

    functions = LocalRuntime(timeout_scale=5.0, handlers=Handlers(authorizer=stand_in)).build_functions()

    assert functions["authorizer"] == LambdaFunction(
        resources.AUTHORIZER_FUNCTION.name, stand_in, 5 * resources.AUTHORIZER_FUNCTION.timeout_seconds
    )
    assert functions["api"].handler == resources.API_FUNCTION.local_handler


def test_the_authorizer_environment_has_the_billing_table_and_no_other_setting_of_the_system() -> None:
    env = LocalRuntime().environment_for("authorizer", RUNTIME_ENV)

    assert env == {
        resources.BILLING_TABLE.env_var: "billing-main",
        **{name: RUNTIME_ENV[name] for name in PROCESS_VARIABLES},
    }
    for absent in (
        resources.EVENTS_TABLE.env_var,
        resources.INGEST_QUEUE.env_var,
        resources.CYCLE_CLOSE_STATE_MACHINE.env_var,
        "BILLING_GRACE_SECONDS",
        "BILLING_LOCAL_ADMIN_KEY",
        "EDITOR",
    ):
        assert absent not in env


@SPECS
def test_each_function_environment_is_its_spec_settings_and_the_process_variables(spec: FunctionSpec) -> None:
    env = function_environment(spec, RUNTIME_ENV)

    assert set(env) - PROCESS_VARIABLES == set(spec.env_vars) & set(RUNTIME_ENV)
    assert set(env) >= PROCESS_VARIABLES


def test_only_the_api_gets_the_state_machine_and_only_cycle_close_the_billing_settings() -> None:
    runtime = LocalRuntime()
    environments = {name: runtime.environment_for(name, RUNTIME_ENV) for name in FUNCTION_SPECS}

    arn = resources.CYCLE_CLOSE_STATE_MACHINE.env_var
    assert {name for name, env in environments.items() if arn in env} == {"api"}
    assert {name for name, env in environments.items() if "BILLING_GRACE_SECONDS" in env} == {"cycle-close"}
    assert {name for name, env in environments.items() if resources.INGEST_DLQ.env_var in env} == {"consumer"}


def test_only_the_sender_opens_webhook_secrets_and_only_webhook_functions_get_the_webhook_queue() -> None:
    runtime = LocalRuntime()
    environments = {name: runtime.environment_for(name, RUNTIME_ENV) for name in FUNCTION_SPECS}

    def having(variable: str) -> set[str]:
        return {name for name, env in environments.items() if variable in env}

    # The key's ARN: the api seals secrets with it, the sender opens them (IAM decides who may do what).
    assert having(resources.WEBHOOK_SECRETS_KEY.env_var) == {"api", "sender"}
    assert having(resources.WEBHOOK_QUEUE.env_var) == {"api", "dispatcher", "sender"}
    assert having("BILLING_WEBHOOK_RETRY_SCHEDULE") == {"sender"}
    assert having("BILLING_WEBHOOK_ALLOW_LOOPBACK") == {"api", "sender"}
    # The failure queues are the pumps' (the event source mappings'), never a function's.
    assert having(resources.OUTBOX_FAILURES_QUEUE.env_var) == set()
    assert having(resources.WEBHOOK_DLQ.env_var) == set()
    assert environments["dispatcher"] == {
        resources.BILLING_TABLE.env_var: "billing-main",
        resources.WEBHOOK_QUEUE.env_var: RUNTIME_ENV[resources.WEBHOOK_QUEUE.env_var],
        **{name: RUNTIME_ENV[name] for name in PROCESS_VARIABLES},
    }


def test_every_function_of_the_runtime_has_a_handler() -> None:
    handlers = Handlers()

    for name, spec in FUNCTION_SPECS.items():
        assert handlers.for_function(name) == spec.local_handler, name


def test_a_worker_process_is_given_only_its_function_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(resources.EVENTS_TABLE.env_var, "billing-events")
    monkeypatch.setenv(resources.BILLING_TABLE.env_var, "billing-main")
    function = LambdaFunction("echo", f"{__name__}:echo_environment", timeout_seconds=30)
    invoker = ProcessInvoker(function, LocalRuntime().environment_for("authorizer")).load()
    try:
        seen = invoker({})
    finally:
        invoker.close()

    assert seen[resources.BILLING_TABLE.env_var] == "billing-main"
    assert resources.EVENTS_TABLE.env_var not in seen
