"""Whatever arrives, the api function answers with the error shape, never a 5xx (hypothesis-driven)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import resources
from billing.bootstrap import get_services
from billing.settings import get_settings
from tests.support import api_event, call_api

ROUTES = [
    ("POST", "/v1/events"),
    ("GET", "/v1/events/e1"),
    ("POST", "/v1/meters"),
    ("GET", "/v1/meters"),
    ("POST", "/v1/customers"),
    ("PATCH", "/v1/customers/cus_1"),
    ("GET", "/v1/customers/cus_1/usage"),
    ("GET", "/v1/customers/cus_1/ledger"),
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans/pro/versions"),
    ("GET", "/v1/plans/pro"),
    ("POST", "/v1/subscriptions"),
    ("POST", "/v1/subscriptions/sub_1/change-plan"),
    ("POST", "/v1/subscriptions/sub_1/cancel"),
    ("POST", "/v1/billing-runs"),
    ("GET", "/v1/billing-runs/run_1"),
    ("GET", "/v1/invoices"),
    ("GET", "/v1/invoices/inv_1"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)
# Bodies shaped like the real ones, with fields of the wrong type or value.
field_names = st.sampled_from(
    [
        "id",
        "customer_id",
        "type",
        "timestamp",
        "properties",
        "events",
        "key",
        "event_type",
        "aggregation",
        "value_property",
        "filters",
        "currency",
        "timezone",
        "billing_anchor_day",
        "tax",
        "payment_method",
        "base_fee",
        "charges",
        "tiers",
        "plan_id",
        "start",
        "effective_at",
        "as_of",
        "interval",
        "meter",
        "model",
    ]
)
shaped = st.dictionaries(field_names, json_values, max_size=8)
queries = st.one_of(
    st.none(),
    st.dictionaries(
        st.sampled_from(["customer_id", "limit", "cursor", "at", "version"]), st.text(max_size=20), max_size=3
    ),
)


@pytest.fixture(autouse=True)
def _billing_runs_configured(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A state machine to start (moto records executions without running them here)."""
    arn = boto3.client("stepfunctions").create_state_machine(
        name="cycle-close",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/cycle-close",
    )["stateMachineArn"]
    monkeypatch.setenv(resources.CYCLE_CLOSE_STATE_MACHINE.env_var, arn)
    get_settings.cache_clear()
    get_services.cache_clear()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    body=st.one_of(shaped, json_values),
    query=queries,
    scope=st.sampled_from(["admin", "ingest", None]),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/cloudevents+json",
            "application/cloudevents-batch+json",
            "text/plain",
        ]
    ),
)
def test_no_request_yields_a_5xx(
    route: tuple[str, str], body: Any, query: dict[str, str] | None, scope: str | None, content_type: str
) -> None:
    method, path = route
    status, payload, _ = call_api(
        api_event(
            method,
            path,
            raw_body=json.dumps(body),
            query=query or None,
            scope=scope,
            headers={"Content-Type": content_type},
        )
    )
    assert status < 500, (method, path, body, payload)
    if status >= 400:
        assert set(payload["error"]) == {"code", "message", "details"}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), raw=st.text(max_size=200))
def test_unreadable_bodies_are_4xx(route: tuple[str, str], raw: str) -> None:
    method, path = route
    status, payload, _ = call_api(api_event(method, path, raw_body=raw))
    assert status < 500, (method, path, raw, payload)
