"""Starting and reading billing runs (the API side), with in-memory ports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing.adapters.billing_runs import BillingRun
from billing.domain.errors import InvalidRequest, NotFound
from billing.services.cycle_close import BillingRuns

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


class MemoryRuns:
    def __init__(self) -> None:
        self.runs: dict[tuple[str | None, str], BillingRun] = {}

    def create_run(self, run: BillingRun) -> None:
        self.runs.setdefault((run.tenant_id, run.id), run)

    def get_run(self, tenant_id: str | None, run_id: str) -> BillingRun | None:
        return self.runs.get((tenant_id, run_id))


class Starter:
    def __init__(self, execution_status: str | None = "RUNNING") -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.execution_status = execution_status

    def start(self, run_id: str, payload: dict[str, Any]) -> None:
        self.started.append((run_id, payload))

    def status(self, run_id: str) -> str | None:
        return self.execution_status


def service(starter: Starter) -> tuple[BillingRuns, MemoryRuns]:
    runs = MemoryRuns()
    return BillingRuns(runs, starter, lambda: NOW), runs  # type: ignore[arg-type]


def test_a_run_is_recorded_before_its_execution_starts_with_the_tenants_scope() -> None:
    starter = Starter()
    runs, store = service(starter)

    run = runs.start("acme", None, "cus_1")

    assert store.get_run("acme", run.id) == run
    assert starter.started == [
        (
            run.id,
            {
                "run_id": run.id,
                "tenant_id": "acme",
                "as_of": "2026-11-25T09:00:00.000000Z",
                "customer_id": "cus_1",
            },
        )
    ]


def test_as_of_in_the_future_is_refused() -> None:
    runs, _ = service(Starter())
    with pytest.raises(InvalidRequest):
        runs.start("acme", datetime(2026, 12, 1, tzinfo=UTC), None)


@pytest.mark.parametrize(
    ("execution", "status"),
    [
        ("FAILED", "failed"),
        ("TIMED_OUT", "failed"),
        ("ABORTED", "failed"),
        ("RUNNING", "running"),
        ("SUCCEEDED", "running"),
        (None, "running"),
    ],
)
def test_a_running_record_whose_execution_died_reads_as_failed(execution: str | None, status: str) -> None:
    runs, _ = service(Starter(execution))
    run = runs.start("acme", None, None)

    read = runs.get("acme", run.id)

    assert read.status == status
    if status == "failed":
        assert read.errors[-1]["error"] == f"execution {execution.lower()}"  # type: ignore[union-attr]


def test_another_tenants_run_is_not_found() -> None:
    runs, _ = service(Starter())
    run = runs.start("acme", None, None)
    with pytest.raises(NotFound):
        runs.get("globex", run.id)
