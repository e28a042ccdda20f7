"""Builders for catalog integration tests: API.md's meters, plan and customer, and calls through the api."""

from __future__ import annotations

import copy
from typing import Any

from tests.support import api_event, call_api
from tests.unit.rating.builders import API_PLAN

# API.md's meter, and one meter for each other charge of its plan.
METERS: list[dict[str, Any]] = [
    {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens",
     "filters": {"region": "eu"}},
    {"key": "calls", "event_type": "api.call", "aggregation": "count"},
    {"key": "seats", "event_type": "seats.updated", "aggregation": "max", "value_property": "seats"},
    {"key": "gb", "event_type": "storage.used", "aggregation": "sum", "value_property": "gb"},
]  # fmt: skip

# API.md's plan, verbatim.
PRO: dict[str, Any] = API_PLAN  # API.md's plan, verbatim

# A plan without commitment and with cheaper tokens.
ENTERPRISE: dict[str, Any] = {
    "id": "enterprise",
    "currency": "USD",
    "base_fee": "99.00",
    "charges": [{"meter": "tokens", "model": "per_unit", "unit_price": "0.00001"}],
}


# API.md's customer.
CUSTOMER: dict[str, Any] = {
    "id": "cus_42",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "currency": "USD",
    "timezone": "America/New_York",
    "billing_anchor_day": 1,
    "tax": {"country": "US", "region": "NY", "postal_code": "10001", "tax_id": None, "exempt": False},
    "payment_method": {"token": "tok_1N3xExampleToken", "gateway": "sandbox"},
}

# Midnight of 1 November 2026 in New York (EDT, UTC-4); the sample requests are received 25 November.
NOVEMBER_NY = "2026-11-01T04:00:00Z"


def api(
    method: str, path: str, body: Any = None, *, tenant: str = "acme", **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = call_api(api_event(method, path, body, tenant_id=tenant, **kwargs))
    return status, answer


def created(path: str, body: Any, *, tenant: str = "acme") -> dict[str, Any]:
    status, answer = api("POST", path, body, tenant=tenant)
    assert status == 201, answer
    return answer


def plan(base: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(base or PRO), **overrides}


def customer(**overrides: Any) -> dict[str, Any]:
    return {**copy.deepcopy(CUSTOMER), **overrides}


def define_meters(tenant: str = "acme") -> None:
    for meter in METERS:
        created("/v1/meters", meter, tenant=tenant)


def define_catalog(tenant: str = "acme", *, start: str = NOVEMBER_NY, **customer_fields: Any) -> None:
    """API.md's meters, plan and customer, and a subscription sub_1 of cus_42 to pro from `start`."""
    define_meters(tenant)
    created("/v1/plans", PRO, tenant=tenant)
    created("/v1/customers", customer(**customer_fields), tenant=tenant)
    created(
        "/v1/subscriptions",
        {"id": "sub_1", "customer_id": "cus_42", "plan_id": "pro", "start": start},
        tenant=tenant,
    )


def error(answer: dict[str, Any]) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"code", "message", "details"}
    return str(answer["error"]["code"])
