"""Seeded fault schedules over cycle close: whatever fails, and wherever a reply is lost, the end state is
exactly one invoice per period and a balanced, unbroken ledger. A failing seed replays exactly."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from billing.bootstrap import get_services
from billing.domain.errors import TransientFailure
from billing.domain.ledger.chain import balances, verify_chain
from billing.domain.rating.periods import format_instant
from tests.integration.test_cycle_close import send, set_up_customer

pytestmark = pytest.mark.usefixtures("aws")

CUSTOMERS = ("cus_1", "cus_2", "cus_3")


class LostReply(Exception):
    """The call reached DynamoDB and took effect, but the function died before it heard back."""


class FaultyDynamoDB:
    """Wraps the real client: throttles some writes before they happen, loses the reply of others."""

    def __init__(self, real: Any, rng: random.Random, rate: float) -> None:
        self._real = real
        self._rng = rng
        self.rate = rate
        self.injected: Counter[str] = Counter()

    def transact_write_items(self, **kwargs: Any) -> Any:
        roll = self._rng.random()
        if roll < self.rate / 2:
            self.injected["throttled"] += 1
            reasons = [{"Code": "ThrottlingError"}] + [{"Code": "None"}] * (len(kwargs["TransactItems"]) - 1)
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "throttled"},
                    "CancellationReasons": reasons,
                },
                "TransactWriteItems",
            )
        result = self._real.transact_write_items(**kwargs)
        if roll < self.rate:
            self.injected["lost_reply"] += 1
            raise LostReply("finalize wrote, then the function died")
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def run_with_retries(as_of: str, rng: random.Random) -> None:
    """Play the state machine: each step retried on failure, and sometimes the whole run abandoned."""
    service = get_services().cycle_close
    listed = service.list_due({"as_of": as_of})
    for item in listed["items"]:
        state: dict[str, Any] = {"run": listed["run"], "item": item}
        while state.get("item"):
            for step in (service.rate, service.tax, service.finalize):
                for _attempt in range(8):
                    try:
                        state = step(state["run"], state["item"])
                        break
                    except (TransientFailure, LostReply):
                        continue  # Step Functions' Retry: the same input again
                else:
                    return  # gave up: a later run picks up what is still due
                if rng.random() < 0.05:
                    return  # the whole execution was lost (timed out): a later run goes on


@pytest.mark.parametrize("seed", range(8))
def test_any_fault_schedule_ends_in_one_invoice_per_period_and_a_sound_ledger(seed: int) -> None:
    rng = random.Random(seed)
    for customer in CUSTOMERS:
        set_up_customer(customer, start="2026-09-01T00:00:00Z")
        send([(f"{customer}-e1", "2026-10-25T10:00:00Z", rng.randint(0, 3000))], customer_id=customer)
    services = get_services()
    faulty = FaultyDynamoDB(services.dynamodb, rng, rate=0.5)
    services.invoice_store._client = faulty  # the finalize transaction is where it matters

    for _ in range(6):
        run_with_retries("2026-11-25T00:00:00Z", rng)
    faulty.rate = 0.0
    run_with_retries("2026-11-25T00:00:00Z", rng)  # the faults are over: what is still due closes

    assert sum(faulty.injected.values()) > 0, "the schedule injected nothing: the seed proves nothing"
    assert services.billing_runs_store.due_before("2026-11-25T00:00:00.000000Z") == []
    for customer in CUSTOMERS:
        page = services.invoice_store.list_for_customer("acme", customer, 10, None)
        periods = Counter(format_instant(invoice.period.start_utc) for invoice in page.items)
        assert periods == Counter({"2026-09-01T00:00:00Z": 1, "2026-10-01T00:00:00Z": 1}), (seed, customer)
        entries = services.ledger_store.entries("acme", customer)
        assert verify_chain(entries).ok, (seed, customer)
        assert len({entry.transaction_id for entry in entries}) == len(page.items)  # one booking each
        billed = sum(invoice.total_minor for invoice in page.items)
        receivable = {kind.value: money.minor for kind, money in balances(entries, "USD").items()}[
            "receivable"
        ]
        assert receivable == billed, (seed, customer)
