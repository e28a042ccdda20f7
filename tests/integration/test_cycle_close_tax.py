"""Tax at cycle close: a location change corrects a finalized period; a provider outage is estimated,
then reconciled at the next close."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from importlib.resources import files
from typing import Any

import pytest

from billing.bootstrap import get_services
from billing.domain.tax.rules_engine import RulesEngine
from billing.domain.tax.tables import DATA_FILES, TAX_CODES_FILE, TaxTables
from billing.settings import get_settings
from tests.integration.test_cycle_close import admin, close, invoice, set_up_customer
from tests.integration.test_tax_provider import API_KEY, FakeTaxProvider

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def provider() -> Iterator[FakeTaxProvider]:
    """A real HTTP tax provider on 127.0.0.1 (the fake of the adapter's own tests)."""
    fake = FakeTaxProvider()
    fake.start()
    yield fake
    fake.stop()


def configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    get_services.cache_clear()


def tax_lines(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in data["lines"] if line["type"] == "tax"]


def test_a_tax_location_change_inside_a_finalized_period_is_corrected_on_the_next_invoice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(monkeypatch, BILLING_SELLER_TAX_REGISTRATIONS="US-NY,US-WA")
    set_up_customer()
    [october] = close("2026-11-02T00:00:00Z")
    assert invoice(october["invoice_id"])["tax"] == "1.96"  # NY 4% of the 49.00 base fee

    admin(
        "PATCH",
        "/v1/customers/cus_1",
        {
            "tax": {"country": "US", "region": "WA", "postal_code": "98101"},
            "tax_effective_at": "2026-10-16T00:00:00Z",
        },
    )
    [november] = close("2026-12-02T00:00:00Z")

    data = invoice(november["invoice_id"])
    [correction] = [line for line in tax_lines(data) if line.get("corrects_invoice_id")]
    # October re-taxed by seconds: 15 of 31 days in NY (23.71 at 4% = 0.95), 16 in WA (25.29 at 6.5% = 1.64)
    assert correction["corrects_invoice_id"] == october["invoice_id"]
    assert correction["amount"] == "0.63"  # 0.95 + 1.64 - 1.96 billed
    # November itself is all in WA: 6.5% of 49.00 = 3.185, rounded half-even per line to 3.18
    assert Decimal(data["tax"]) == Decimal("3.18") + Decimal("0.63")
    # The ledger books the corrected tax too, and the chain still verifies.
    assert get_services().ledger_store.entries("acme", "cus_1")[-1].sequence == 6

    assert close("2026-12-02T00:00:00Z") == []  # nothing left to correct
    # The next close re-taxes November too: its own tax was right, and October's correction it carries
    # is not November's own tax, so nothing is "corrected" back.
    [december] = close("2027-01-02T00:00:00Z")
    assert [
        line for line in tax_lines(invoice(december["invoice_id"])) if line.get("corrects_invoice_id")
    ] == []


def test_a_provider_outage_is_estimated_and_reconciled_at_the_next_close(
    monkeypatch: pytest.MonkeyPatch, provider: FakeTaxProvider
) -> None:
    configure(
        monkeypatch,
        BILLING_SELLER_TAX_REGISTRATIONS="US-NY",
        TAX_PROVIDER="faketax",
        TAX_PROVIDER_URL=provider.url,
        TAX_PROVIDER_API_KEY=API_KEY,
        TAX_PROVIDER_TIMEOUT_SECONDS="0.5",
    )
    set_up_customer()
    provider.mode = "slow"
    provider.delay = 2.0  # longer than the timeout

    [october] = close("2026-11-02T00:00:00Z")

    estimated = invoice(october["invoice_id"])
    assert [line["tax_estimated"] for line in tax_lines(estimated)] == [True]
    assert estimated["tax"] == "1.96"  # the built-in rules as the fallback: NY 4%

    provider.mode = "ok"
    provider.rate = Decimal("0.045")  # the provider knows better: 4.5%
    [november] = close("2026-12-02T00:00:00Z")

    data = invoice(november["invoice_id"])
    [correction] = [line for line in tax_lines(data) if line.get("corrects_invoice_id")]
    assert correction["amount"] == "0.24"  # 4.5% of 49.00 = 2.205 -> 2.20 (half-even); 2.20 - 1.96
    assert "estimated tax reconciled" in correction["description"]
    assert not any(line["tax_estimated"] for line in tax_lines(data))


def tables_with_new_york_rate_change(on: str, new_rate: str) -> TaxTables:
    """The shipped tables, with New York's 4% ending the day before `on` and `new_rate` from `on`."""
    data = files("billing.domain.tax").joinpath("data")
    documents = {name: json.loads(data.joinpath(name).read_text()) for name in DATA_FILES}
    rules = documents["us_sales_tax.json"]["rules"]
    [new_york] = [rule for rule in rules if rule["jurisdiction"] == "US-NY"]
    rules.append({**new_york, "rule_id": "US-NY-NEW", "rate": new_rate, "effective_from": on})
    new_york["effective_to"] = on
    return TaxTables.from_documents(documents, json.loads(data.joinpath(TAX_CODES_FILE).read_text()))


@pytest.mark.parametrize(
    ("timezone", "december_starts"),
    [("UTC", "2026-12-01T00:00:00Z"), ("America/New_York", "2026-12-01T05:00:00Z")],
)
def test_a_period_is_taxed_at_the_rates_of_its_last_local_day_not_of_the_day_after(
    monkeypatch: pytest.MonkeyPatch, timezone: str, december_starts: str
) -> None:
    # New York's rate goes from 4% to 5% on January 1: December is taxed at December's 4%, in UTC (whose
    # December ends at midnight, January 1 UTC) and in New York (whose December ends at 05:00 UTC).
    configure(monkeypatch, BILLING_SELLER_TAX_REGISTRATIONS="US-NY")
    services = get_services()
    services.tax_engine = RulesEngine(tables_with_new_york_rate_change("2027-01-01", "0.05"))
    set_up_customer(start="2026-12-01T00:00:00Z")
    admin(
        "POST",
        "/v1/customers",
        {
            "id": "cus_2",
            "currency": "USD",
            "timezone": timezone,
            "tax": {"country": "US", "region": "NY", "postal_code": "10001"},
        },
    )
    admin(
        "POST",
        "/v1/subscriptions",
        {"id": "sub_2", "customer_id": "cus_2", "plan_id": "pro", "start": december_starts},
    )

    finals = close("2027-01-02T06:00:00Z", customer_id="cus_2")

    december = invoice(finals[-1]["invoice_id"])
    assert december["period"]["start"].startswith("2026-12-01")
    assert december["tax"] == "1.96"  # 4% of 49.00, not 5% (2.45)
    assert [line["amount"] for line in tax_lines(december)] == ["1.96"]
