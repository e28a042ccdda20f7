"""The due index and billing-run records on moto."""

from __future__ import annotations

from billing.adapters.billing_runs import BillingRun, DuePeriod, DynamoBillingRuns
from billing.settings import Settings


def due(tenant: str, sub: str, end: str, customer: str = "cus_1") -> DuePeriod:
    return DuePeriod(tenant, sub, customer, "2026-10-01T00:00:00.000000Z", end)


def test_due_before_finds_every_shard_up_to_the_cutoff_inclusive(settings: Settings) -> None:
    store = DynamoBillingRuns(settings.billing_table)
    periods = [due("acme", f"sub_{i}", f"2026-11-0{1 + i % 3}T00:00:00.000000Z") for i in range(30)]
    for period in periods:
        store.schedule(period)
        store.schedule(period)  # idempotent

    found = store.due_before("2026-11-02T00:00:00.000000Z")

    assert {p.subscription_id for p in found} == {
        p.subscription_id for p in periods if p.period_end[9] in "12"
    }
    assert [p.period_end for p in found] == sorted(p.period_end for p in found)


def test_due_before_filters_by_tenant_and_customer(settings: Settings) -> None:
    store = DynamoBillingRuns(settings.billing_table)
    store.schedule(due("acme", "s1", "2026-11-01T00:00:00.000000Z", customer="c1"))
    store.schedule(due("acme", "s2", "2026-11-01T00:00:00.000000Z", customer="c2"))
    store.schedule(due("globex", "s3", "2026-11-01T00:00:00.000000Z", customer="c1"))
    cutoff = "2026-12-01T00:00:00.000000Z"

    assert [p.subscription_id for p in store.due_before(cutoff, tenant_id="acme")] == ["s1", "s2"]
    assert [p.subscription_id for p in store.due_before(cutoff, tenant_id="acme", customer_id="c2")] == ["s2"]


def test_runs_are_scoped_by_tenant_and_created_once(settings: Settings) -> None:
    store = DynamoBillingRuns(settings.billing_table)
    run = BillingRun("run_1", "acme", "running", "2026-11-25T00:00:00Z", None, "2026-11-25T00:00:01Z")
    store.create_run(run)
    store.create_run(BillingRun("run_1", "acme", "failed", "x", None, "y"))  # a retried create: no change

    assert store.get_run("acme", "run_1") == run
    assert store.get_run("globex", "run_1") is None

    run.status, run.invoices, run.finished_at = "succeeded", ["inv_1"], "2026-11-25T00:00:09Z"
    store.finish_run(run)
    assert store.get_run("acme", "run_1") == run
