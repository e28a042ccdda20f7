"""A billing run end to end: a real `billing-local` process, real HTTP, the state machine on moto's server.

A period that ended is closed by `POST /v1/billing-runs`: the api function starts the cycle-close state
machine, moto runs it (Distributed Map and all), its Lambda tasks reach the local cycle-close function,
and the invoice, its tax and the ledger entries are read back over HTTP.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from billing.domain.rating.invoices import invoice_id
from billing.domain.rating.periods import BillingCycle, BillingPeriod, format_instant
from local.runtime import DEFAULT_LOCAL_SELLER_REGISTRATIONS
from tests.e2e.conftest import FIXED_ADMIN_KEY, RuntimeProcess, start_runtime
from tests.e2e.test_catalog_e2e import admin, created
from tests.e2e.test_local_runtime import post_events, unique, wait_stored

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_SECONDS = 60
TIMEZONE = "America/New_York"


@pytest.fixture(scope="module")
def billing_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """No grace window (a period closes as soon as it ends), no schedule (only the test starts runs)."""
    running = start_runtime(
        tmp_path_factory.mktemp("billing-local-runs"),
        env={"BILLING_LOCAL_ADMIN_KEY": FIXED_ADMIN_KEY},
        args=[
            "--grace-seconds",
            "0",
            "--seller-registrations",
            DEFAULT_LOCAL_SELLER_REGISTRATIONS,
            "--schedule-interval",
            "0",
        ],
    )
    yield running
    code = running.stop()
    assert code == 0, running.output()


def ended_period(now: datetime) -> tuple[int, BillingPeriod]:
    """An anchor day and the period it gives that ended about ten days ago (it began about 40 days ago)."""
    anchor = min((now - timedelta(days=10)).astimezone(BillingCycle(TIMEZONE, 1).zone).day, 28)
    cycle = BillingCycle(TIMEZONE, anchor)
    current = cycle.period_containing(now)
    return anchor, cycle.period_containing(current.start_utc - timedelta(seconds=1))


def sfn_client(runtime: RuntimeProcess) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=runtime.endpoint_url,
        region_name=runtime.info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def wait_for_run(runtime: RuntimeProcess, run_id: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    while True:
        response = admin(runtime, "GET", f"/v1/billing-runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        elapsed = time.monotonic() - started
        if run["status"] != "running":
            return run, elapsed
        assert elapsed < RUN_TIMEOUT_SECONDS, f"run {run_id} still running:\n{runtime.output()[-4000:]}"
        time.sleep(0.25)


def test_a_billing_run_closes_the_ended_period_with_tax_and_ledger(billing_runtime: RuntimeProcess) -> None:
    runtime = billing_runtime
    now = datetime.now(UTC).replace(microsecond=0)
    anchor, period = ended_period(now)
    assert period.end_utc <= now - timedelta(days=1)
    tokens = unique("tokens")
    customer_id, plan_id, subscription_id = unique("cus"), unique("plan"), unique("sub")

    created(runtime, "/v1/meters", {"key": tokens, "event_type": "api.call", "aggregation": "sum",
                                    "value_property": "tokens"})  # fmt: skip
    created(runtime, "/v1/plans", {
        "id": plan_id, "currency": "USD", "interval": "month", "base_fee": "49.00", "tax_code": "saas",
        "charges": [{"meter": tokens, "model": "graduated",
                     "tiers": [{"up_to": 100000, "unit_price": "0"},
                               {"up_to": None, "unit_price": "0.00002"}]}],
    })  # fmt: skip
    created(runtime, "/v1/customers", {
        "id": customer_id, "name": "Grace Hopper", "currency": "USD", "timezone": TIMEZONE,
        "billing_anchor_day": anchor, "tax": {"country": "US", "region": "NY", "postal_code": "10001"},
    })  # fmt: skip
    # From the ended period's start: one whole period to close, the full base fee.
    subscription = {"id": subscription_id, "customer_id": customer_id, "plan_id": plan_id,
                    "start": format_instant(period.start_utc)}  # fmt: skip
    created(runtime, "/v1/subscriptions", subscription)

    # Events at most 35 days old: the last days of the ended period, and one in the open period (not billed).
    in_period = [period.end_utc - timedelta(days=2), period.end_utc - timedelta(hours=1)]
    assert all(now - at < timedelta(days=34) and period.contains(at) for at in in_period)
    events = [
        {"id": unique("evt"), "customer_id": customer_id, "type": "api.call",
         "timestamp": format_instant(at), "properties": {"tokens": amount}}
        for at, amount in ((in_period[0], 120_000), (in_period[1], 30_000), (now, 999_999))
    ]  # fmt: skip
    response = post_events(runtime, {"events": events})
    assert response.status_code == 202, response.text
    for event in events:
        wait_stored(runtime, event["id"], customer_id)

    response = admin(runtime, "POST", "/v1/billing-runs", {})
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["id"].startswith("run_")
    assert started["status"] == "running"

    run, seconds = wait_for_run(runtime, started["id"])
    assert run["status"] == "succeeded", run
    expected_id = invoice_id(runtime.info["tenant_id"], subscription_id, period.start_utc)
    assert expected_id in run["invoices"]
    print(f"billing run {run['id']} took {seconds:.1f} s")  # timing, shown with -s
    # The execution the api started, named by the run: the subscription went through a Distributed Map.
    execution_arn = (
        runtime.info["state_machine_arn"].replace(":stateMachine:", ":execution:") + f":{run['id']}"
    )
    history = sfn_client(runtime).get_execution_history(executionArn=execution_arn, maxResults=1000)
    assert "MapRunStarted" in {event["type"] for event in history["events"]}

    response = admin(runtime, "GET", f"/v1/invoices/{expected_id}")
    assert response.status_code == 200, response.text
    invoice = response.json()
    assert invoice["status"] == "finalized"
    assert (invoice["customer_id"], invoice["subscription_id"]) == (customer_id, subscription_id)
    assert invoice["period"] == period.to_json()
    amounts = {line["type"]: line["amount"] for line in invoice["lines"]}
    # 150,000 tokens in the period: 100,000 free, 50,000 at 0.00002 = 1.00. New York taxes SaaS at 4%.
    assert amounts == {"base_fee": "49.00", "usage": "1.00", "tax": amounts["tax"]}
    assert (invoice["subtotal"], invoice["tax"], invoice["total"]) == ("50.00", "2.00", "52.00")
    assert sum(Decimal(line["amount"]) for line in invoice["lines"] if line["type"] == "tax") == Decimal("2")
    assert invoice["amount_due"] == "52.00"

    response = admin(runtime, "GET", f"/v1/customers/{customer_id}/ledger")
    assert response.status_code == 200, response.text
    ledger = response.json()
    assert ledger["chain"]["ok"] is True
    assert ledger["entries"], ledger
    sums: dict[str, dict[str, int]] = defaultdict(lambda: {"debit": 0, "credit": 0})
    for entry in ledger["entries"]:
        sums[entry["transaction_id"]][entry["direction"]] += entry["amount_minor"]
    assert all(side["debit"] == side["credit"] > 0 for side in sums.values()), sums
    assert (ledger["balances"]["receivable"], ledger["balances"]["revenue"]) == ("52.00", "50.00")
    assert ledger["balances"]["tax_payable"] == "2.00"

    # A second run finds nothing left to close in that period: no new invoice, no new entries.
    again = admin(runtime, "POST", "/v1/billing-runs", {"customer_id": customer_id})
    assert again.status_code == 202, again.text
    rerun, _ = wait_for_run(runtime, again.json()["id"])
    assert (rerun["status"], rerun["invoices"]) == ("succeeded", [])
    response = admin(runtime, "GET", f"/v1/customers/{customer_id}/ledger")
    assert len(response.json()["entries"]) == len(ledger["entries"])
    assert "Grace Hopper" not in runtime.output()


def test_the_scheduler_starts_runs_on_its_own(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`--schedule-interval 1`: runs named by their instant appear and succeed; local defaults apply."""
    runtime = start_runtime(
        tmp_path_factory.mktemp("billing-local-schedule"), args=["--schedule-interval", "1"]
    )
    try:
        arn = runtime.info["state_machine_arn"]
        assert arn.endswith(":stateMachine:billing-cycle-close")
        assert runtime.info["env"]["CYCLE_CLOSE_STATE_MACHINE_ARN"] == arn
        sfn = sfn_client(runtime)
        deadline = time.monotonic() + 30
        succeeded: list[dict[str, Any]] = []
        while not succeeded and time.monotonic() < deadline:
            executions = sfn.list_executions(stateMachineArn=arn)["executions"]
            succeeded = [e for e in executions if e["status"] == "SUCCEEDED"]
            time.sleep(0.25)
        assert succeeded, runtime.output()
        assert all(e["name"].startswith("run_sched_") for e in executions)
        described = sfn.describe_execution(executionArn=succeeded[0]["executionArn"])
        assert '"source": "schedule"' in described["input"]
        grace = os.environ.get("BILLING_GRACE_SECONDS", "0")
        assert f"BILLING_GRACE_SECONDS={grace}," in runtime.output()
    finally:
        assert runtime.stop() == 0, runtime.output()
