"""The catalog through the api function on moto: meters, customers, versioned plans, subscriptions."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from billing.settings import get_settings
from tests.integration.catalog_builders import (
    CUSTOMER,
    ENTERPRISE,
    METERS,
    NOVEMBER_NY,
    PRO,
    api,
    created,
    customer,
    define_catalog,
    define_meters,
    error,
    plan,
)
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")


def billing_items() -> list[dict[str, Any]]:
    """Every item of the billing table (a scan is fine in a test, never in the code)."""
    client = boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=get_settings().billing_table):
        items += page["Items"]
    return items


# ---- meters ------------------------------------------------------------------------------------------


def test_a_meter_is_created_read_back_and_its_key_is_unique_per_tenant() -> None:
    meter = created("/v1/meters", METERS[0])

    assert meter == {**METERS[0], "created_at": "2026-11-25T09:00:00Z"}
    assert api("GET", "/v1/meters/tokens") == (200, meter)
    status, answer = api("POST", "/v1/meters", {**METERS[0], "event_type": "other"})
    assert (status, error(answer)) == (409, "meter_exists")
    # Another tenant has its own namespace: the same key is free there, and acme's meter is invisible.
    status, answer = api("GET", "/v1/meters/tokens", tenant="globex")
    assert (status, error(answer)) == (404, "meter_not_found")
    assert created("/v1/meters", METERS[0], tenant="globex")["key"] == "tokens"


def test_meters_are_listed_a_page_at_a_time_with_an_opaque_cursor() -> None:
    keys = [f"m{n}" for n in range(5)]
    for key in keys:
        created("/v1/meters", {"key": key, "event_type": "api.call", "aggregation": "count"})
    created("/v1/meters", {"key": "other", "event_type": "api.call", "aggregation": "count"}, tenant="globex")

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        status, page = api(
            "GET", "/v1/meters", query={"limit": "2", **({"cursor": cursor} if cursor else {})}
        )
        assert status == 200, page
        assert set(page) == {"data", "next_cursor"}
        seen += [meter["key"] for meter in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (seen, pages) == (keys, 3)  # 2 + 2 + 1, and no empty last page
    assert api("GET", "/v1/meters", query={"limit": "5"})[1]["next_cursor"] is None


def test_a_cursor_of_another_list_or_tenant_and_a_bad_limit_are_400() -> None:
    for n in range(3):
        created("/v1/meters", {"key": f"m{n}", "event_type": "t", "aggregation": "count"})
    cursor = api("GET", "/v1/meters", query={"limit": "1"})[1]["next_cursor"]

    for tenant, query in [
        ("globex", {"cursor": cursor}),  # acme's cursor, used by globex
        ("acme", {"cursor": "not-a-cursor"}),
        ("acme", {"cursor": "eyJwayI6MX0="}),  # base64 of {"pk":1}
        ("acme", {"limit": "0"}),
        ("acme", {"limit": "101"}),
        ("acme", {"limit": "ten"}),
    ]:
        status, answer = api("GET", "/v1/meters", tenant=tenant, query=query)
        assert status == 400, query
        assert error(answer) in {"invalid_cursor", "invalid_parameter"}
    status, answer = api("GET", "/v1/customers", query={"cursor": cursor})  # a meters cursor
    assert (status, error(answer)) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("meter", "code"),
    [
        ({"key": "m", "event_type": "t", "aggregation": "median", "value_property": "v"}, "invalid_meter"),
        ({"key": "m", "event_type": "t", "aggregation": "sum"}, "invalid_meter"),  # sum of what?
        ({"key": "m", "event_type": "t", "aggregation": "count", "value_property": "v"}, "invalid_meter"),
        ({"key": "a/b", "event_type": "t", "aggregation": "count"}, "invalid_meter"),
        ({"key": "m", "event_type": "t", "aggregation": "count", "filter": {}}, "invalid_meter"),
        ({"key": "m", "event_type": "t", "aggregation": "count", "filters": {"a": [1]}}, "invalid_meter"),
        ({"key": 7, "event_type": "t", "aggregation": "count"}, "invalid_meter"),
    ],
)
def test_invalid_meters_are_422_with_a_code(meter: dict[str, Any], code: str) -> None:
    status, answer = api("POST", "/v1/meters", meter)

    assert (status, error(answer)) == (422, code)


# ---- customers ---------------------------------------------------------------------------------------


def test_a_customer_is_created_as_api_md_shows_and_read_back() -> None:
    body = created("/v1/customers", CUSTOMER)

    assert {key: body[key] for key in CUSTOMER} == CUSTOMER
    assert body["subscriptions"] == []
    assert api("GET", "/v1/customers/cus_42") == (200, body)
    status, answer = api("POST", "/v1/customers", CUSTOMER)
    assert (status, error(answer)) == (409, "customer_exists")


def test_a_minimal_customer_bills_in_utc_from_the_first_of_the_month() -> None:
    body = created("/v1/customers", {"id": "c1", "currency": "EUR"})

    assert (body["timezone"], body["billing_anchor_day"], body["tax"], body["payment_method"]) == (
        "UTC",
        1,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        ({"currency": "XYZ"}, "unknown_currency", "currency"),
        ({"currency": "usd"}, "unknown_currency", "currency"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown_timezone", "timezone"),
        ({"timezone": "localtime"}, "unknown_timezone", "timezone"),
        ({"billing_anchor_day": 29}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": 0}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": "1"}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": 1.5}, "invalid_anchor_day", "billing_anchor_day"),
        ({"id": "user@example.com"}, "invalid_customer", "id"),
        ({"email": "not-an-address"}, "invalid_customer", "email"),
        ({"name": ""}, "invalid_customer", "name"),
        ({"tax": {"country": "usa"}}, "invalid_customer", "tax.country"),
        ({"tax": {"country": "US", "vat": "x"}}, "invalid_customer", "tax.vat"),
        ({"tax": {"country": "US", "region": "New York"}}, "invalid_customer", "tax.region"),
        ({"tax": {"country": "US", "exempt": "no"}}, "invalid_customer", "tax.exempt"),
        ({"payment_method": {"token": "1234567890", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "tok_1", "gateway": "Stripe!"}}, "invalid_payment_method",
         "payment_method.gateway"),
        ({"nickname": "x"}, "invalid_customer", "nickname"),
    ],
)  # fmt: skip
def test_invalid_customers_are_422_naming_the_field(changes: dict[str, Any], code: str, field: str) -> None:
    status, answer = api("POST", "/v1/customers", customer(**changes))

    assert (status, error(answer)) == (422, code)
    assert answer["error"]["details"] == [{"field": field}]
    assert answer["error"]["message"]


@pytest.mark.parametrize(
    "changes",
    [
        {"payment_method": {"token": "4111111111111111", "gateway": "sandbox"}},
        {"payment_method": {"token": "tok_4111-1111-1111-1111", "gateway": "sandbox"}},
        {"name": "Ada 5555 5555 5555 4444"},
        {"tax": {"country": "US", "tax_id": "378282246310005"}},
        {"billing_anchor_day": 4111111111111111},
    ],
)
def test_a_card_number_anywhere_in_a_customer_is_rejected_and_not_stored(changes: dict[str, Any]) -> None:
    status, answer = api("POST", "/v1/customers", customer(**changes))

    assert (status, error(answer)) == (422, "card_number_rejected")
    assert api("GET", "/v1/customers/cus_42")[0] == 404
    assert billing_items() == []


def test_a_card_number_in_a_patch_is_rejected_and_the_customer_unchanged() -> None:
    before = created("/v1/customers", CUSTOMER)

    status, answer = api("PATCH", "/v1/customers/cus_42", {"name": "4000 0566 5566 5556"})

    assert (status, error(answer)) == (422, "card_number_rejected")
    assert api("GET", "/v1/customers/cus_42") == (200, before)
    assert "4000" not in json.dumps(billing_items())


def test_patch_replaces_personal_data_and_payment_method() -> None:
    created("/v1/customers", CUSTOMER)

    status, body = api(
        "PATCH",
        "/v1/customers/cus_42",
        {"name": "Ada King", "email": None, "payment_method": {"token": "pm_2", "gateway": "adyen"}},
    )

    assert status == 200, body
    assert (body["name"], body["email"], body["payment_method"]) == (
        "Ada King",
        None,
        {"token": "pm_2", "gateway": "adyen"},
    )
    assert api("GET", "/v1/customers/cus_42") == (200, body)


def test_a_tax_location_change_is_recorded_with_its_effective_time_and_history_is_only_appended() -> None:
    created("/v1/customers", CUSTOMER)
    moved = {"country": "US", "region": "CA", "postal_code": "94103", "tax_id": None, "exempt": False}

    status, body = api(
        "PATCH", "/v1/customers/cus_42", {"tax": moved, "tax_effective_at": "2026-11-15T12:00:00-05:00"}
    )

    assert status == 200, body
    assert body["tax_history"] == [
        {"effective_at": None, "tax": CUSTOMER["tax"]},
        {"effective_at": "2026-11-15T17:00:00Z", "tax": moved},
    ]
    assert body["tax"] == moved  # in effect at the time of the request (25 November)
    # The same location again is no new change (a retried PATCH).
    assert api("PATCH", "/v1/customers/cus_42", {"tax": moved})[1]["tax_history"] == body["tax_history"]
    # A change may not be slipped in before the latest one.
    status, answer = api(
        "PATCH",
        "/v1/customers/cus_42",
        {"tax": {"country": "DE", "tax_id": "DE123456789"}, "tax_effective_at": "2026-11-10T00:00:00Z"},
    )
    assert (status, error(answer)) == (422, "invalid_customer")
    assert answer["error"]["details"] == [{"field": "tax_effective_at"}]
    # Without an effective time, a change applies from the time of the request.
    status, body = api("PATCH", "/v1/customers/cus_42", {"tax": {"country": "DE", "tax_id": "DE123456789"}})
    assert body["tax_history"][-1]["effective_at"] == "2026-11-25T09:00:00Z"
    status, answer = api("PATCH", "/v1/customers/cus_42", {"tax": None})
    assert (status, error(answer)) == (422, "invalid_customer")


def test_currency_timezone_and_anchor_change_only_while_there_is_no_subscription() -> None:
    created("/v1/customers", CUSTOMER)
    status, body = api("PATCH", "/v1/customers/cus_42", {"currency": "EUR", "timezone": "Europe/Berlin"})
    assert (status, body["currency"], body["timezone"]) == (200, "EUR", "Europe/Berlin")
    api("PATCH", "/v1/customers/cus_42", {"currency": "USD"})
    define_meters()
    created("/v1/plans", PRO)
    created("/v1/subscriptions", {"id": "sub_1", "customer_id": "cus_42", "plan_id": "pro"})

    for change in ({"currency": "EUR"}, {"timezone": "UTC"}, {"billing_anchor_day": 15}):
        status, answer = api("PATCH", "/v1/customers/cus_42", change)
        assert (status, error(answer)) == (409, "customer_has_subscription"), change
    # Restating the current values is not a change.
    assert api("PATCH", "/v1/customers/cus_42", {"currency": "USD", "billing_anchor_day": 1})[0] == 200


def test_customers_are_listed_per_tenant_and_other_tenants_get_404() -> None:
    for n in range(3):
        created("/v1/customers", {"id": f"c{n}", "currency": "USD"})
    created("/v1/customers", {"id": "g0", "currency": "USD"}, tenant="globex")

    first = api("GET", "/v1/customers", query={"limit": "2"})[1]
    second = api("GET", "/v1/customers", query={"limit": "2", "cursor": first["next_cursor"]})[1]

    assert [c["id"] for c in first["data"]] + [c["id"] for c in second["data"]] == ["c0", "c1", "c2"]
    assert second["next_cursor"] is None
    for method, body in (("GET", None), ("PATCH", {"name": "Mallory"})):
        status, answer = api(method, "/v1/customers/c0", body, tenant="globex")
        assert (status, error(answer)) == (404, "customer_not_found")
    assert api("GET", "/v1/customers/c0")[1].get("name") is None


def test_personal_data_never_reaches_the_logs(capsys: pytest.CaptureFixture[str]) -> None:
    define_catalog()
    api("PATCH", "/v1/customers/cus_42", {"name": "Grace Hopper", "email": "grace@example.org"})
    api("GET", "/v1/customers/cus_42")
    api("GET", "/v1/customers")
    api("POST", "/v1/customers", customer(id="cus_43", email="broken"))

    logs = capsys.readouterr()
    for secret in ("Ada", "Lovelace", "ada@example.com", "Grace", "grace@example.org", "tok_1N3x"):
        assert secret not in logs.out + logs.err


# ---- plans -------------------------------------------------------------------------------------------


def test_the_api_md_plan_is_created_as_version_1() -> None:
    define_meters()

    body = created("/v1/plans", PRO)

    assert body["version"] == 1
    assert {key: body[key] for key in ("id", "currency", "interval", "base_fee", "minimum_commitment")} == {
        "id": "pro",
        "currency": "USD",
        "interval": "month",
        "base_fee": "49.00",
        "minimum_commitment": "100.00",
    }
    assert body["charges"][0]["tiers"][1] == {"up_to": None, "unit_price": "0.00002", "flat_fee": "0"}
    assert api("GET", "/v1/plans/pro") == (200, body)
    status, answer = api("POST", "/v1/plans", PRO)
    assert (status, error(answer)) == (409, "plan_exists")


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        ({"charges": [{"meter": "nope", "model": "per_unit", "unit_price": "1"}]}, "unknown_meter", "nope"),
        ({"currency": "ABC"}, "unknown_currency", "ISO 4217"),
        ({"base_fee": "-1.00"}, "invalid_amount", "negative"),
        ({"base_fee": 49.0}, "invalid_amount", "prices are decimal strings"),
        ({"base_fee": 49}, "invalid_amount", "prices are decimal strings"),
        ({"minimum_commitment": "1e3"}, "invalid_amount", "decimal number"),
        ({"charges": [{"meter": "calls", "model": "per_unit", "unit_price": 0.001}]}, "invalid_amount",
         "prices are decimal strings"),
        ({"charges": [{"meter": "calls", "model": "per_unit", "unit_price": "-0.001"}]}, "invalid_amount",
         "negative"),
        ({"charges": [{"meter": "seats", "model": "volume",
                       "tiers": [{"up_to": 10, "unit_price": 8}, {"up_to": None, "unit_price": "6"}]}]},
         "invalid_amount", "prices are decimal strings"),
        ({"charges": [{"meter": "seats", "model": "volume",
                       "tiers": [{"up_to": 10, "unit_price": "8"}, {"up_to": 5, "unit_price": "6"},
                                 {"up_to": None, "unit_price": "1"}]}]}, "invalid_tiers", "ascending"),
        ({"charges": [{"meter": "seats", "model": "graduated",
                       "tiers": [{"up_to": 10, "unit_price": "8"}]}]}, "invalid_tiers", "open"),
        ({"charges": [{"meter": "seats", "model": "graduated", "tiers": []}]}, "invalid_tiers", "non-empty"),
        ({"charges": [{"meter": "seats", "model": "graduated",
                       "tiers": [{"up_to": "1" + "0" * 400, "unit_price": "8"},
                                 {"up_to": None, "unit_price": "1"}]}]},
         "invalid_amount", "38 significant digits"),
        ({"charges": [{"meter": "gb", "model": "package", "package_size": 0, "package_price": "5"}]},
         "invalid_amount", "greater than zero"),
        ({"charges": [{"meter": "gb", "model": "tiered", "unit_price": "5"}]}, "invalid_charge", "model"),
        ({"charges": [{"meter": "gb", "model": "per_unit", "unit_prize": "5"}]}, "invalid_charge",
         "unit_prize"),
        ({"charges": [{"meter": "gb", "model": "per_unit", "unit_price": "1"},
                      {"meter": "gb", "model": "per_unit", "unit_price": "2"}]},
         "invalid_plan", "one charge"),
        ({"interval": "year"}, "invalid_plan", "interval"),
        ({"version": 3}, "invalid_plan", "assigned"),
        ({"id": "pro plan"}, "invalid_plan", "printable ASCII"),
        ({"charges": "all of them"}, "invalid_plan", "list"),
        ({"base_fee": "9" * 39}, "invalid_amount", "38 significant digits"),
    ],
)  # fmt: skip
def test_invalid_plans_are_422_with_a_clear_message(changes: dict[str, Any], code: str, message: str) -> None:
    define_meters()

    status, answer = api("POST", "/v1/plans", plan(**changes))

    assert (status, error(answer)) == (422, code), answer
    assert message in answer["error"]["message"]
    assert api("GET", "/v1/plans/pro")[0] == 404


def test_a_new_plan_version_leaves_existing_subscriptions_on_theirs() -> None:
    define_catalog()
    v1 = api("GET", "/v1/plans/pro")[1]

    v2 = created("/v1/plans/pro/versions", plan(base_fee="59.00"))

    assert (v2["id"], v2["version"], v2["base_fee"]) == ("pro", 2, "59.00")
    assert api("GET", "/v1/plans/pro") == (200, v2)
    assert api("GET", "/v1/plans/pro", query={"version": "1"}) == (200, v1)
    assert api("GET", "/v1/plans/pro", query={"version": "2"}) == (200, v2)
    assert api("GET", "/v1/subscriptions/sub_1")[1]["plan_version"] == 1
    # The usage estimate still bills version 1's base fee.
    assert api("GET", "/v1/customers/cus_42/usage")[1]["base_fee"] == "49.00"
    # The id in the body is optional and must match the URL; the currency is the plan's for good.
    assert created("/v1/plans/pro/versions", {k: v for k, v in PRO.items() if k != "id"})["version"] == 3
    status, answer = api("POST", "/v1/plans/pro/versions", plan(id="other"))
    assert (status, error(answer)) == (422, "invalid_plan")
    status, answer = api("POST", "/v1/plans/pro/versions", plan(currency="EUR"))
    assert (status, error(answer)) == (422, "invalid_plan")
    assert "currency" in answer["error"]["message"]


def test_plan_versions_that_do_not_exist_are_404_and_a_bad_version_is_400() -> None:
    define_meters()
    created("/v1/plans", PRO)

    assert error(api("GET", "/v1/plans/pro", query={"version": "2"})[1]) == "plan_not_found"
    assert error(api("GET", "/v1/plans/nope")[1]) == "plan_not_found"
    status, answer = api("POST", "/v1/plans/nope/versions", plan(id="nope"))
    assert (status, error(answer)) == (404, "plan_not_found")
    for version in ("0", "one", "-1"):
        status, answer = api("GET", "/v1/plans/pro", query={"version": version})
        assert (status, error(answer)) == (400, "invalid_parameter")
    status, answer = api("GET", "/v1/plans/pro", tenant="globex")
    assert (status, error(answer)) == (404, "plan_not_found")


def test_plans_are_listed_with_their_latest_versions() -> None:
    define_meters()
    created("/v1/plans", PRO)
    created("/v1/plans", ENTERPRISE)
    created("/v1/plans/pro/versions", plan(base_fee="59.00"))

    status, page = api("GET", "/v1/plans")

    assert status == 200
    assert [(p["id"], p["version"]) for p in page["data"]] == [("enterprise", 1), ("pro", 2)]
    assert page["next_cursor"] is None
    assert api("GET", "/v1/plans", tenant="globex")[1] == {"data": [], "next_cursor": None}


def test_plan_items_are_an_immutable_version_each_and_a_head() -> None:
    define_meters()
    created("/v1/plans", PRO)
    created("/v1/plans/pro/versions", plan(base_fee="59.00"))

    plan_items = sorted(
        (item["sk"]["S"], item["entity"]["S"])
        for item in billing_items()
        if item["pk"]["S"] == "T#acme#PLAN#pro"
    )

    assert plan_items == [
        ("HEAD", "plan"),
        ("VERSION#000001", "plan_version"),
        ("VERSION#000002", "plan_version"),
    ]


# ---- subscriptions -----------------------------------------------------------------------------------


def test_a_subscription_pins_the_latest_plan_version_and_shows_on_its_customer() -> None:
    define_catalog()

    status, body = api("GET", "/v1/subscriptions/sub_1")

    assert status == 200
    assert body == {
        "id": "sub_1",
        "customer_id": "cus_42",
        "plan_id": "pro",
        "plan_version": 1,
        "status": "active",
        "start": NOVEMBER_NY,
        "end": None,
        "segments": [{"plan_id": "pro", "plan_version": 1, "start": NOVEMBER_NY, "end": None}],
        "created_at": "2026-11-25T09:00:00Z",
        "updated_at": "2026-11-25T09:00:00Z",
    }
    assert api("GET", "/v1/customers/cus_42")[1]["subscriptions"] == [
        {"id": "sub_1", "start": NOVEMBER_NY, "end": None}
    ]
    status, answer = api("GET", "/v1/subscriptions/sub_1", tenant="globex")
    assert (status, error(answer)) == (404, "subscription_not_found")


def test_a_subscription_starts_now_by_default_and_may_pin_an_older_version() -> None:
    define_meters()
    created("/v1/plans", PRO)
    created("/v1/plans/pro/versions", plan(base_fee="59.00"))
    created("/v1/customers", CUSTOMER)

    body = created(
        "/v1/subscriptions", {"id": "s", "customer_id": "cus_42", "plan_id": "pro", "plan_version": 1}
    )

    assert (body["start"], body["plan_version"]) == ("2026-11-25T09:00:00Z", 1)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"id": "s2", "customer_id": "nobody", "plan_id": "pro"}, 422, "unknown_customer"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "nope"}, 422, "unknown_plan"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "pro", "plan_version": 9}, 422, "unknown_plan"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "pro", "plan_version": "1"}, 422,
         "invalid_subscription"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "euro"}, 422, "currency_mismatch"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "pro", "start": "yesterday"}, 422,
         "invalid_timestamp"),
        ({"id": "s2", "customer_id": "cus_42"}, 422, "invalid_subscription"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "pro", "trial": 14}, 422, "invalid_subscription"),
        ({"id": "sub_1", "customer_id": "cus_42", "plan_id": "pro"}, 409, "subscription_exists"),
        ({"id": "s2", "customer_id": "cus_42", "plan_id": "pro"}, 409, "active_subscription_exists"),
    ],
)  # fmt: skip
def test_subscriptions_that_cannot_be_created(body: dict[str, Any], status: int, code: str) -> None:
    define_catalog()
    created("/v1/plans", plan(id="euro", currency="EUR"))

    got_status, answer = api("POST", "/v1/subscriptions", body)

    assert (got_status, error(answer)) == (status, code)
    assert api("GET", "/v1/subscriptions/s2")[0] == 404


def test_another_tenants_customer_and_plan_do_not_exist_for_a_subscription() -> None:
    define_catalog()
    created("/v1/plans", ENTERPRISE)
    define_meters("globex")
    created("/v1/plans", PRO, tenant="globex")
    created("/v1/customers", {"id": "g1", "currency": "USD"}, tenant="globex")

    status, answer = api(
        "POST", "/v1/subscriptions", {"id": "s", "customer_id": "cus_42", "plan_id": "pro"}, tenant="globex"
    )
    assert (status, error(answer)) == (422, "unknown_customer")
    status, answer = api(
        "POST",
        "/v1/subscriptions",
        {"id": "s", "customer_id": "g1", "plan_id": "enterprise"},
        tenant="globex",
    )
    assert (status, error(answer)) == (422, "unknown_plan")
    # acme's sub_1 is not globex's: the same id is free there.
    status, _ = api(
        "POST", "/v1/subscriptions", {"id": "sub_1", "customer_id": "g1", "plan_id": "pro"}, tenant="globex"
    )
    assert status == 201


def test_change_plan_splits_the_subscription_into_segments() -> None:
    define_catalog()
    created("/v1/plans", ENTERPRISE)

    status, body = api(
        "POST",
        "/v1/subscriptions/sub_1/change-plan",
        {"plan_id": "enterprise", "effective_at": "2026-11-16T05:00:00Z"},
    )

    assert status == 200, body
    assert (body["plan_id"], body["plan_version"], body["status"]) == ("enterprise", 1, "active")
    assert body["segments"] == [
        {"plan_id": "pro", "plan_version": 1, "start": NOVEMBER_NY, "end": "2026-11-16T05:00:00Z"},
        {"plan_id": "enterprise", "plan_version": 1, "start": "2026-11-16T05:00:00Z", "end": None},
    ]
    assert api("GET", "/v1/subscriptions/sub_1") == (200, body)


def test_change_plan_rules() -> None:
    define_catalog()
    created("/v1/plans", ENTERPRISE)
    created("/v1/plans", plan(id="euro", currency="EUR"))
    change = "/v1/subscriptions/sub_1/change-plan"

    status, answer = api("POST", change, {"plan_id": "enterprise", "effective_at": "2026-10-31T00:00:00Z"})
    assert (status, error(answer)) == (422, "invalid_subscription")
    assert answer["error"]["details"] == [{"field": "effective_at"}]
    assert error(api("POST", change, {"plan_id": "pro"})[1]) == "plan_unchanged"
    assert api("POST", change, {"plan_id": "pro"})[0] == 409
    assert error(api("POST", change, {"plan_id": "euro"})[1]) == "invalid_subscription"
    assert error(api("POST", change, {"plan_id": "nope"})[1]) == "unknown_plan"
    assert error(api("POST", change, {})[1]) == "invalid_subscription"
    status, answer = api("POST", "/v1/subscriptions/nope/change-plan", {"plan_id": "pro"})
    assert (status, error(answer)) == (404, "subscription_not_found")
    status, answer = api("POST", change, {"plan_id": "enterprise"}, tenant="globex")
    assert (status, error(answer)) == (404, "subscription_not_found")
    # Without effective_at the change applies at the time of the request.
    created("/v1/plans/pro/versions", plan(base_fee="59.00"))
    status, body = api("POST", change, {"plan_id": "pro"})
    assert status == 200
    assert body["segments"][-1] == {
        "plan_id": "pro",
        "plan_version": 2,
        "start": "2026-11-25T09:00:00Z",
        "end": None,
    }


def test_cancel_ends_the_subscription_and_frees_the_customer_for_a_new_one() -> None:
    define_catalog()
    cancel = "/v1/subscriptions/sub_1/cancel"

    status, body = api("POST", cancel, {"at": "2026-11-20T05:00:00Z"})

    assert status == 200, body
    assert (body["status"], body["end"]) == ("cancelled", "2026-11-20T05:00:00Z")
    assert body["segments"][-1]["end"] == "2026-11-20T05:00:00Z"
    assert api("GET", "/v1/customers/cus_42")[1]["subscriptions"] == [
        {"id": "sub_1", "start": NOVEMBER_NY, "end": "2026-11-20T05:00:00Z"}
    ]
    assert error(api("POST", cancel, {})[1]) == "subscription_cancelled"
    status, answer = api("POST", "/v1/subscriptions/sub_1/change-plan", {"plan_id": "pro"})
    assert (status, error(answer)) == (409, "subscription_cancelled")
    # One subscription at a time: a new one may start where the old one ended, not before.
    status, answer = api(
        "POST",
        "/v1/subscriptions",
        {"id": "sub_2", "customer_id": "cus_42", "plan_id": "pro", "start": "2026-11-19T00:00:00Z"},
    )
    assert (status, error(answer)) == (409, "active_subscription_exists")
    created(
        "/v1/subscriptions",
        {"id": "sub_2", "customer_id": "cus_42", "plan_id": "pro", "start": "2026-11-20T05:00:00Z"},
    )


def test_cancel_without_a_body_is_now_and_before_the_start_is_422() -> None:
    define_catalog()

    status, answer = api("POST", "/v1/subscriptions/sub_1/cancel", {"at": "2026-10-01T00:00:00Z"})
    assert (status, error(answer)) == (422, "invalid_subscription")
    status, body, _ = call_api(api_event("POST", "/v1/subscriptions/sub_1/cancel"))
    assert (status, body["end"]) == (200, "2026-11-25T09:00:00Z")


# ---- Idempotency-Key and malformed bodies ------------------------------------------------------------


def test_idempotent_replays_of_catalog_posts() -> None:
    define_meters()
    key = {"Idempotency-Key": "plan-pro-1"}

    first = call_api(api_event("POST", "/v1/plans", PRO, headers=key))
    again = call_api(api_event("POST", "/v1/plans", PRO, headers=key))
    other = call_api(api_event("POST", "/v1/plans", plan(base_fee="1.00"), headers=key))

    assert first[0] == 201
    assert again[:2] == first[:2]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert (other[0], other[1]["error"]["code"]) == (422, "idempotency_key_reused")
    # Without the key, the second POST is a conflict, not a second plan.
    assert call_api(api_event("POST", "/v1/plans", PRO))[0] == 409
    # A change-plan retried with its key is applied once.
    created("/v1/plans", ENTERPRISE)
    created("/v1/customers", CUSTOMER)
    created(
        "/v1/subscriptions", {"id": "sub_1", "customer_id": "cus_42", "plan_id": "pro", "start": NOVEMBER_NY}
    )
    change = api_event(
        "POST",
        "/v1/subscriptions/sub_1/change-plan",
        {"plan_id": "enterprise"},
        headers={"Idempotency-Key": "c1"},
    )
    assert call_api(change)[:2] == call_api(change)[:2]
    assert len(api("GET", "/v1/subscriptions/sub_1")[1]["segments"]) == 2


CATALOG_POSTS = [
    ("POST", "/v1/meters"),
    ("POST", "/v1/customers"),
    ("PATCH", "/v1/customers/cus_42"),
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans/pro/versions"),
    ("POST", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions/sub_1/change-plan"),
    ("POST", "/v1/subscriptions/sub_1/cancel"),
]


@pytest.mark.parametrize(("method", "path"), CATALOG_POSTS)
@pytest.mark.parametrize(
    ("raw_body", "statuses"),
    [
        ("{not json", {400}),
        ("[1, 2]", {400}),
        ('"a string"', {400}),
        ("null", {400}),
        ("[" * 50_000 + "]" * 50_000, {400}),
        # About as deep as the JSON parser goes: refused by it (400) or read and refused as content (4xx).
        ('{"a": ' + "[" * 985 + "]" * 985 + "}", {400, 404, 409, 422}),
        ('{"id": 1e999999999, "key": {"a": [true]}, "plan_id": false, "at": 5}', {404, 409, 422}),
        ('{"id": ' + "9" * 5000 + "}", {400}),
        ('{"id": "x", "customer_id": ["cus_42"], "currency": 12, "base_fee": 4.9, "effective_at": {}}',
         {404, 409, 422}),
        ('{"\\u0000": "\\ud800"}', {404, 409, 422}),
        ('{"x": NaN}', {400}),
    ],
)  # fmt: skip
def test_malformed_bodies_never_answer_5xx(method: str, path: str, raw_body: str, statuses: set[int]) -> None:
    define_catalog()

    status, answer, _ = call_api(api_event(method, path, raw_body=raw_body))

    assert status in statuses, (status, answer)
    error(answer)


def test_a_body_over_256_kib_is_413() -> None:
    status, answer = api("POST", "/v1/customers", customer(name="x" * 300_000))

    assert (status, error(answer)) == (413, "payload_too_large")
