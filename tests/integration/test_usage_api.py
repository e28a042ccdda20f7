"""Open-period usage on moto: events sent through POST /v1/events, stored by the ingest pump, rated by
GET /v1/customers/{id}/usage; and the period GET /v1/events/{id} reports. Amounts are worked by hand.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from billing.adapters.usage_reader import DynamoEventsReader
from billing.bootstrap import get_services
from billing.domain.usage_events import shard_for
from billing.settings import get_settings
from tests.integration.catalog_builders import (
    ENTERPRISE,
    api,
    created,
    define_catalog,
    error,
)
from tests.support import api_event, call_api, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")

USAGE = "/v1/customers/cus_42/usage"


def send(*events: dict[str, Any], tenant: str = "acme") -> None:
    status, body, _ = call_api(
        api_event("POST", "/v1/events", {"events": list(events)}, tenant_id=tenant, scope="ingest")
    )
    assert (status, body["rejected"]) == (202, []), body
    drain(ingest_pump())


def event(
    event_id: str, type: str, timestamp: str, customer: str = "cus_42", **properties: Any
) -> dict[str, Any]:
    return {
        "id": event_id,
        "customer_id": customer,
        "type": type,
        "timestamp": timestamp,
        "properties": properties,
    }


def api_calls(
    timestamp: str, *tokens_and_regions: tuple[int, str], prefix: str = "call"
) -> list[dict[str, Any]]:
    return [
        event(f"{prefix}-{n}", "api.call", timestamp, tokens=tokens, region=region)
        for n, (tokens, region) in enumerate(tokens_and_regions)
    ]


def by_meter(usage: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {row["meter"]: (row["quantity"], row["amount"]) for row in usage["meters"]}


def test_open_period_usage_of_the_api_md_plan_equals_the_hand_computed_amount() -> None:
    define_catalog()
    send(
        *api_calls("2026-11-02T15:00:00Z", (120_000, "eu"), (60_000, "eu"), (5_000, "us")),
        event("s1", "seats.updated", "2026-11-03T15:00:00Z", seats=8),
        event("s2", "seats.updated", "2026-11-10T15:00:00Z", seats=12),
        event("g1", "storage.used", "2026-11-04T15:00:00Z", gb=130),
        event("g2", "storage.used", "2026-11-20T15:00:00Z", gb="120.5"),
    )

    status, usage = api("GET", USAGE)

    assert status == 200, usage
    assert usage["period"] == {"start": "2026-11-01T04:00:00Z", "end": "2026-12-01T05:00:00Z"}
    assert (usage["currency"], usage["subscription_id"]) == ("USD", "sub_1")
    assert by_meter(usage) == {
        # eu tokens only (the meter filters region=eu): 180,000; the first 100,000 are free,
        # 80,000 x 0.00002 = 1.60
        "tokens": ("180000", "1.60"),
        # three api.call events x 0.001 = 0.003, rounded once, half-even, to 0.00
        "calls": ("3", "0.00"),
        # volume: the maximum, 12 seats, is in the second tier, so all 12 at 6 = 72.00 (not 10x8 + 2x6)
        "seats": ("12", "72.00"),
        # package: 250.5 GB is three started packages of 100 at 5.00 = 15.00
        "gb": ("250.5", "15.00"),
    }
    # 49.00 + 1.60 + 0.00 + 72.00 + 15.00 = 137.60, above the 100.00 commitment: no true-up.
    assert (usage["base_fee"], usage["minimum_commitment"], usage["estimated_total"]) == (
        "49.00",
        "0.00",
        "137.60",
    )
    tokens_line = next(line for line in usage["lines"] if line["meter"] == "tokens")
    assert [(row["quantity"], row["amount"]) for row in tokens_line["tier_breakdown"]] == [
        ("100000", "0"),
        ("80000", "1.6"),
    ]


def test_a_plan_change_mid_period_prorates_base_fees_and_splits_usage() -> None:
    define_catalog(start="2026-11-01T00:00:00Z", timezone="UTC")
    created("/v1/plans", ENTERPRISE)
    send(
        *api_calls("2026-11-05T00:00:00Z", (150_000, "eu"), prefix="before"),
        *api_calls("2026-11-16T00:00:00Z", (200_000, "eu"), prefix="after"),  # at the change: the new plan
    )
    status, _ = api(
        "POST",
        "/v1/subscriptions/sub_1/change-plan",
        {"plan_id": "enterprise", "effective_at": "2026-11-16T00:00:00Z"},
    )
    assert status == 200

    usage = api("GET", USAGE)[1]

    # November in UTC: 30 days; the change after exactly 15, so each plan has half the period.
    assert [(line["type"], line["plan_id"], line["meter"], line["amount"]) for line in usage["lines"]] == [
        ("base_fee", "pro", None, "24.50"),  # 49.00 x 1/2
        ("usage", "pro", "tokens", "1.00"),  # 150,000 - 100,000 free = 50,000 x 0.00002
        ("usage", "pro", "calls", "0.00"),  # 0.001 (one call), half-even
        ("usage", "pro", "seats", "0.00"),
        ("usage", "pro", "gb", "0.00"),
        ("minimum_commitment", "pro", None, "24.50"),  # 100.00 x 1/2 = 50.00, billed 25.50
        ("base_fee", "enterprise", None, "49.50"),  # 99.00 x 1/2
        ("usage", "enterprise", "tokens", "2.00"),  # 200,000 x 0.00001
    ]
    assert by_meter(usage)["tokens"] == ("350000", "3.00")
    assert usage["estimated_total"] == "101.50"


def test_a_cancellation_mid_period_stops_the_base_fee_and_usage_there() -> None:
    define_catalog(start="2026-11-01T00:00:00Z", timezone="UTC")
    send(
        *api_calls("2026-11-05T00:00:00Z", (300_000, "eu"), prefix="before"),
        *api_calls("2026-11-07T00:00:00Z", (900_000, "eu"), prefix="after"),  # after the end: not billed
    )
    api("POST", "/v1/subscriptions/sub_1/cancel", {"at": "2026-11-07T00:00:00Z"})

    usage = api("GET", USAGE, query={"at": "2026-11-25T09:00:00Z"})[1]

    # 6 of 30 days: base 49.00 x 0.2 = 9.80; tokens 200,000 x 0.00002 = 4.00; calls 0.001 -> 0.00;
    # billed 13.80 against a commitment of 100.00 x 0.2 = 20.00: a 6.20 true-up.
    assert (usage["base_fee"], usage["minimum_commitment"], usage["estimated_total"]) == (
        "9.80",
        "6.20",
        "20.00",
    )
    assert by_meter(usage)["tokens"] == ("300000", "4.00")


def test_only_the_customers_own_events_in_the_period_count() -> None:
    define_catalog(start="2026-11-01T00:00:00Z", timezone="UTC")
    define_catalog(tenant="globex", start="2026-11-01T00:00:00Z", timezone="UTC")
    send(
        event("mine", "api.call", "2026-11-01T00:00:00Z", tokens=100_001, region="eu"),  # first instant: in
        event("before", "api.call", "2026-10-31T23:59:59Z", tokens=500_000, region="eu"),  # October
        event("other", "api.call", "2026-11-02T00:00:00Z", customer="cus_7", tokens=500_000, region="eu"),
    )
    send(event("theirs", "api.call", "2026-11-02T00:00:00Z", tokens=500_000, region="eu"), tenant="globex")

    assert by_meter(api("GET", USAGE)[1])["tokens"] == ("100001", "0.00")  # 1 x 0.00002, half-even
    assert by_meter(api("GET", USAGE, tenant="globex")[1])["tokens"] == ("500000", "8.00")


def test_events_on_every_shard_are_read() -> None:
    define_catalog(start="2026-11-01T00:00:00Z", timezone="UTC")
    ids = [f"evt-{n}" for n in range(60)]
    send(*[event(event_id, "api.call", "2026-11-10T12:00:00Z", tokens=1000, region="eu") for event_id in ids])
    shards = Counter(shard_for(event_id, get_settings().event_shards) for event_id in ids)
    assert len(shards) == get_settings().event_shards  # the test really spreads over all shards

    assert by_meter(api("GET", USAGE)[1])["calls"] == ("60", "0.06")


def test_the_events_reader_pages_through_each_shard_and_keeps_the_window_half_open() -> None:
    define_catalog(start="2026-11-01T00:00:00Z", timezone="UTC")
    send(*[event(f"e{n}", "api.call", f"2026-11-10T12:00:{n:02d}Z") for n in range(30)])
    services = get_services()

    class SmallPages:
        """A client whose queries return at most two items, so every shard needs several pages."""

        def __init__(self, real: Any) -> None:
            self.real = real
            self.queries = 0

        def query(self, **kwargs: Any) -> Any:
            self.queries += 1
            return self.real.query(**kwargs, Limit=2)

    client = SmallPages(services.dynamodb)
    reader = DynamoEventsReader(get_settings().events_table, get_settings().event_shards, client)

    events = reader.events_in(
        "acme",
        "cus_42",
        datetime(2026, 11, 10, 12, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 10, 12, 0, 25, tzinfo=UTC),
    )

    assert sorted(e.event_id for e in events) == sorted(f"e{n}" for n in range(5, 25))
    assert client.queries > get_settings().event_shards
    assert (
        reader.events_in(
            "acme", "cus_42", datetime(2026, 11, 11, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)
        )
        == []
    )


def test_usage_without_a_subscription_or_customer_is_404_and_other_tenants_see_nothing() -> None:
    define_catalog()
    created("/v1/customers", {"id": "cus_free", "currency": "USD"})

    status, answer = api("GET", "/v1/customers/cus_free/usage")
    assert (status, error(answer)) == (404, "no_subscription")
    assert "POST /v1/subscriptions" in answer["error"]["message"]
    status, answer = api("GET", "/v1/customers/nobody/usage")
    assert (status, error(answer)) == (404, "customer_not_found")
    status, answer = api("GET", USAGE, tenant="globex")
    assert (status, error(answer)) == (404, "customer_not_found")
    # The subscription starts 1 November: October has no subscription.
    status, answer = api("GET", USAGE, query={"at": "2026-10-15T00:00:00Z"})
    assert (status, error(answer)) == (404, "no_subscription")


def test_usage_at_a_given_instant_and_a_bad_at_is_400() -> None:
    define_catalog()

    status, usage = api("GET", USAGE, query={"at": "2026-12-01T04:59:59.999999Z"})  # last µs of November
    assert (status, usage["period"]["start"], usage["as_of"]) == (
        200,
        "2026-11-01T04:00:00Z",
        "2026-12-01T04:59:59.999999Z",
    )
    status, usage = api("GET", USAGE, query={"at": "2026-12-01T00:00:00-05:00"})  # midnight in New York
    assert usage["period"] == {"start": "2026-12-01T05:00:00Z", "end": "2027-01-01T05:00:00Z"}
    for bad in ("yesterday", "2026-11-01", "2026-11-01T00:00:00"):
        status, answer = api("GET", USAGE, query={"at": bad})
        assert (status, error(answer)) == (400, "invalid_parameter")


def test_a_subscription_starting_mid_period_pays_its_share() -> None:
    define_catalog(start="2026-11-11T00:00:00Z", timezone="UTC")
    send(*api_calls("2026-11-05T00:00:00Z", (500_000, "eu"), prefix="before-start"))

    usage = api("GET", USAGE)[1]

    # 20 of 30 days: base 49.00 x 2/3 = 32.666.. -> 32.67; commitment 66.666.. -> 66.67; no usage yet.
    assert (usage["base_fee"], usage["minimum_commitment"], usage["estimated_total"]) == (
        "32.67",
        "34.00",
        "66.67",
    )
    assert by_meter(usage)["tokens"] == ("0", "0.00")


def test_get_event_reports_the_period_of_the_subscription_running_at_its_timestamp() -> None:
    define_catalog()
    send(
        event("in", "api.call", "2026-11-02T15:00:00Z"),
        event("before", "api.call", "2026-10-30T15:00:00Z"),
        event("nobody", "api.call", "2026-11-02T15:00:00Z", customer="cus_7"),
    )

    status, body = api("GET", "/v1/events/in", query={"customer_id": "cus_42"})
    assert (status, body["status"], body["subscription_id"]) == (200, "counted", "sub_1")
    assert body["period"] == {"start": "2026-11-01T04:00:00Z", "end": "2026-12-01T05:00:00Z"}
    # Before the subscription started, and for a customer without one, no period bills it: unbilled.
    body = api("GET", "/v1/events/before", query={"customer_id": "cus_42"})[1]
    assert (body["status"], body["period"], body["subscription_id"]) == ("unbilled", None, None)
    body = api("GET", "/v1/events/nobody", query={"customer_id": "cus_7"})[1]
    assert (body["status"], body["period"], body["subscription_id"]) == ("unbilled", None, None)
