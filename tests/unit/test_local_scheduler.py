"""The local stand-in for EventBridge Scheduler: names runs by their instant, skips a name already started."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from local.scheduler import CycleCloseScheduler

AT = datetime(2026, 11, 25, 9, 0, 0, 123456, tzinfo=UTC)


class FakeStepFunctions:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.inputs: list[dict[str, Any]] = []

    def start_execution(self, *, stateMachineArn: str, name: str, input: str) -> dict[str, str]:
        if name in self.names:
            raise ClientError({"Error": {"Code": "ExecutionAlreadyExists"}}, "StartExecution")
        self.names.append(name)
        self.inputs.append(json.loads(input))
        return {"executionArn": f"{stateMachineArn}:{name}"}


def test_a_tick_starts_a_run_named_by_its_instant_and_a_repeat_is_skipped() -> None:
    sfn = FakeStepFunctions()
    scheduler = CycleCloseScheduler(sfn, "arn:sm", 3600, clock=lambda: AT)

    assert scheduler.fire() == "run_sched_20261125T090000Z"
    assert scheduler.fire() is None

    assert sfn.inputs == [{"source": "schedule", "as_of": "2026-11-25T09:00:00Z"}]
    assert (scheduler.started, scheduler.skipped) == (sfn.names, sfn.names)


def test_stop_ends_the_thread_before_the_first_tick() -> None:
    sfn = FakeStepFunctions()
    scheduler = CycleCloseScheduler(sfn, "arn:sm", 3600, clock=lambda: AT).start()
    scheduler.stop(timeout=5)
    assert sfn.names == []
