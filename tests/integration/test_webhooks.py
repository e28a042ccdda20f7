"""Webhooks end to end on moto with a real HTTP receiver on loopback: facts → outbox → deliveries → signed
POSTs, verified with the unmodified `standardwebhooks` package; retries on an injected clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import pytest
import standardwebhooks.webhooks
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook
from werkzeug import Request, Response

from billing.bootstrap import get_services
from billing.domain.webhooks.retries import RetrySchedule
from billing.settings import get_settings
from tests.integration.test_cycle_close import admin, close, send, set_up_customer
from tests.integration.webhook_support import WebhookBench

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]) -> None:
    monkeypatch.setenv("BILLING_WEBHOOK_ALLOW_LOOPBACK", "true")
    get_settings.cache_clear()
    get_services.cache_clear()


def received(server: HTTPServer) -> list[tuple[dict[str, Any], dict[str, str], bytes]]:
    """(body, headers, raw body) of every request the receiver got, in order."""
    return [
        (json.loads(request.get_data()), dict(request.headers), request.get_data())
        for request, _ in server.log
    ]


def verified(secret: str, server: HTTPServer) -> list[dict[str, Any]]:
    """Every request verified as Standard Webhooks with `secret` (raises otherwise), as bodies.

    The library checks the timestamp against its clock (5 minutes' tolerance); the bench's clock runs
    ahead on retries, so each request is verified as its receiver would have, at the time it was sent.
    """
    webhook = Webhook(secret)
    bodies = []
    for _, headers, raw in received(server):
        with library_clock_at(int(headers["Webhook-Timestamp"])):
            bodies.append(webhook.verify(raw, headers))
    return bodies


@contextmanager
def library_clock_at(timestamp: int) -> Iterator[None]:
    """`standardwebhooks` reads `datetime.now`: make it the given instant (the package stays unmodified)."""

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.fromtimestamp(timestamp, tz=UTC)

    original = standardwebhooks.webhooks.datetime
    standardwebhooks.webhooks.datetime = Frozen  # type: ignore[misc]
    try:
        yield
    finally:
        standardwebhooks.webhooks.datetime = original  # type: ignore[misc]


def billed_customer(customer_id: str = "cus_1") -> None:
    set_up_customer(customer_id)
    send([(f"e1_{customer_id}", "2026-10-25T10:00:00Z", 1500)], customer_id)


def test_a_finalized_invoice_reaches_the_endpoint_signed_and_in_order(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks", method="POST").respond_with_data("ok")
    bench = WebhookBench()
    created = bench.endpoints.create("acme", httpserver.url_for("/hooks"), ["*"], "receiver")
    billed_customer()
    [final] = close("2026-11-02T00:00:00Z")
    invoice_id = final["invoices"][0]

    bench.run()

    [body] = verified(created.secret, httpserver)
    assert body["type"] == "invoice.finalized"
    assert body["customer_id"] == "cus_1"
    assert body["sequence"] == 1
    assert body["data"]["invoice_id"] == invoice_id
    assert body["data"]["total"] == admin("GET", f"/v1/invoices/{invoice_id}")["total"]
    [(_, headers, _)] = received(httpserver)
    assert headers["Webhook-Id"] == body["id"]
    [delivery] = bench.deliveries.list("acme", created.endpoint.id, None, 10, None).items
    assert delivery.status.value == "succeeded"
    assert [attempt.status_code for attempt in delivery.attempts] == [200]


def test_a_receiver_that_fails_three_times_gets_the_same_event_four_times_then_the_next(
    httpserver: HTTPServer,
) -> None:
    answers = iter([500, 500, 503, 200, 200, 200, 200])
    httpserver.expect_request("/hooks").respond_with_handler(
        lambda request: Response("x", status=next(answers))
    )
    bench = WebhookBench(schedule=RetrySchedule((5, 300, 1800, 7200)))
    created = bench.endpoints.create("acme", httpserver.url_for("/hooks"), ["*"], None)
    billed_customer()
    [final] = close("2026-11-02T00:00:00Z")
    invoice_id = final["invoices"][0]
    admin("POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "1.00", "reference": "wire-1"})
    start = bench.clock()

    bench.run()

    bodies = [body for body, _, _ in received(httpserver)]
    assert [(body["type"], body["sequence"]) for body in bodies] == [
        ("invoice.finalized", 1),
        ("invoice.finalized", 1),
        ("invoice.finalized", 1),
        ("invoice.finalized", 1),
        ("payment.succeeded", 2),
        ("invoice.partially_paid", 3),
    ]
    assert len({body["id"] for body in bodies[:4]}) == 1
    first = bench.store.get_delivery("acme", _delivery_of(bench, created.endpoint.id, 1))
    assert first is not None
    offsets = [(attempt.at - start).total_seconds() for attempt in first.attempts]
    # Attempts at 0, then 5 s, 5 min and 30 min later, each stretched by at most 10% jitter.
    assert offsets[0] == 0
    gaps = [later - earlier for earlier, later in pairwise(offsets)]
    for gap, planned in zip(gaps, (5, 300, 1800), strict=True):
        assert planned <= gap < planned * 1.1 + 1
    verified(created.secret, httpserver)


def _delivery_of(bench: WebhookBench, endpoint_id: str, sequence: int) -> str:
    page = bench.deliveries.list("acme", endpoint_id, None, 100, None)
    return next(delivery.id for delivery in page.items if delivery.sequence == sequence)


def _is(request: Request, customer_id: str) -> bool:
    return bool(json.loads(request.get_data())["customer_id"] == customer_id)
