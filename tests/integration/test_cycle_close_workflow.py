"""The cycle-close definition runs on moto's ASL interpreter, its Lambda tasks routed to local callables."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from billing.workflows.cycle_close import cycle_close_definition
from local.stepfunctions import LambdaRouter, register_functions


class FakeSteps:
    """Stand-in for the cycle-close function: records calls, fails as told."""

    def __init__(self, items: list[str], fail_always: set[str], fail_once: set[str]) -> None:
        self.items = items
        self.fail_always = fail_always
        self.fail_once = set(fail_once)
        self.calls: Counter[tuple[str, str]] = Counter()
        self.summary: dict[str, Any] | None = None

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        step = event["step"]
        if step == "list_due":
            items = [{"due": {"subscription_id": item, "period": 1}, "invoices": []} for item in self.items]
            return {"run": {"id": "run_1"}, "items": items}
        if step == "summarize":
            self.summary = event
            return {"status": "succeeded"}
        item = event["item"]
        name = item["due"]["subscription_id"]
        self.calls[(step, name)] += 1
        if name in self.fail_always and step == "tax":
            raise ValueError(f"no tax rate for {name}")
        if (step, name) in {("finalize", failing) for failing in self.fail_once}:
            self.fail_once.discard(name)
            raise TransientFailure("throttled")
        if step != "finalize":
            return {"run": event["run"], "item": item}
        invoices = [*item["invoices"], f"inv_{name}_{item['due']['period']}"]
        # sub_a has two ended periods: the machine must loop back for the second one.
        more = name == "sub_a" and item["due"]["period"] == 1
        next_item = {"due": {"subscription_id": name, "period": 2}, "invoices": invoices} if more else None
        return {"run": event["run"], "status": "finalized", "invoices": invoices, "item": next_item}


class TransientFailure(Exception):
    """Named like the functions' error type, which the definition retries."""


@pytest.fixture
def state_machine(aws: dict[str, str]) -> Iterator[tuple[Any, FakeSteps]]:
    steps = FakeSteps(items=["sub_a", "sub_b", "sub_c"], fail_always={"sub_b"}, fail_once={"sub_c"})
    arns = register_functions(boto3.client("lambda"), boto3.client("iam"), ["cycle-close"])
    LambdaRouter.install({"cycle-close": steps})
    definition = cycle_close_definition(arns["cycle-close"], retry_seconds=1)
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="cycle-close", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )["stateMachineArn"]
    yield arn, steps
    LambdaRouter.uninstall({"cycle-close": steps})


def run(sfn: Any, arn: str) -> dict[str, Any]:
    execution = sfn.start_execution(stateMachineArn=arn, name="run_1", input="{}")["executionArn"]
    for _ in range(300):
        described = sfn.describe_execution(executionArn=execution)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.05)
    raise AssertionError("execution did not finish")


def test_one_failing_subscription_never_blocks_the_others_and_transients_are_retried(
    state_machine: tuple[str, FakeSteps],
) -> None:
    arn, steps = state_machine
    described = run(boto3.client("stepfunctions"), arn)

    assert described["status"] == "SUCCEEDED"
    assert steps.summary is not None
    results = {
        r["item"]["due"]["subscription_id"] if r["item"] else r["invoices"][0][4:9]: r
        for r in steps.summary["results"]
    }
    assert results["sub_a"]["invoices"] == ["inv_sub_a_1", "inv_sub_a_2"]  # both periods, in order
    assert results["sub_c"]["status"] == "finalized"  # after one retried TransientFailure
    assert results["sub_b"]["status"] == "failed"
    assert results["sub_b"]["error"] == "ValueError"
    assert steps.calls[("finalize", "sub_c")] == 2
    assert steps.calls[("rate", "sub_a")] == 2
    assert steps.calls[("finalize", "sub_b")] == 0  # tax failed: it never reached finalize
