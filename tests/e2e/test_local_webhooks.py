"""Webhooks end to end: a real `billing-local` process, a real receiver on 127.0.0.1 (pytest-httpserver).

An endpoint is created through the API; a billing run finalizes an invoice, whose `invoice.finalized`
event goes from the outbox (the billing table's stream, played by the local stream pump) through the
dispatcher and the webhook queue to the sender, which POSTs it, signed, to the receiver. The signature is
checked with the unmodified `standardwebhooks` package. A receiver that fails three times gets the same
delivery (the same webhook-id) on the compressed retry schedule until it answers 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from billing.domain.rating.invoices import invoice_id
from billing.domain.rating.periods import format_instant
from local.runtime import LocalRuntime
from tests.e2e.conftest import FIXED_ADMIN_KEY, RuntimeProcess, start_runtime
from tests.e2e.test_billing_run_e2e import TIMEZONE, ended_period, wait_for_run
from tests.e2e.test_catalog_e2e import admin, created
from tests.e2e.test_local_runtime import post_events, unique, wait_stored

pytestmark = pytest.mark.e2e

# Seconds between attempts for the runtime under test: four retries, one second apart.
RETRY_SCHEDULE = "1,1,1,1"
DELIVERY_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def webhook_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """No grace window and no schedule (only the test starts billing runs), retries one second apart."""
    running = start_runtime(
        tmp_path_factory.mktemp("billing-local-webhooks"),
        env={"BILLING_LOCAL_ADMIN_KEY": FIXED_ADMIN_KEY},
        args=[
            "--grace-seconds",
            "0",
            "--schedule-interval",
            "0",
            "--retry-delay",
            "1",
            "--webhook-retry-schedule",
            RETRY_SCHEDULE,
        ],
    )
    yield running
    code = running.stop()
    assert code == 0, running.output()


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: dict[str, str]

    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


class Receiver:
    """The receiver's path on the test's HTTP server: records every request, answers `statuses` in turn
    (the last one from then on)."""

    def __init__(self, httpserver: HTTPServer, path: str, statuses: tuple[int, ...] = (200,)) -> None:
        self.url = httpserver.url_for(path)
        self._statuses = statuses
        self._lock = threading.Lock()
        self.requests: list[Received] = []
        httpserver.expect_request(path, method="POST").respond_with_handler(self._answer)

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(
                Received(request.get_data(), {k.lower(): v for k, v in request.headers.items()})
            )
            status = self._statuses[min(len(self.requests), len(self._statuses)) - 1]
        return Response("ok" if status < 300 else "not now", status=status)

    def wait_for(self, count: int, runtime: RuntimeProcess, what: str) -> list[Received]:
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.1)
        pytest.fail(f"the receiver did not get {what} in time:\n{runtime.output()[-6000:]}")


@pytest.fixture
def endpoints(webhook_runtime: RuntimeProcess) -> Iterator[list[str]]:
    """Endpoints a test created, deleted after it (they are the tenant's: the next test must not get their
    events)."""
    made: list[str] = []
    yield made
    for endpoint_id in made:
        admin(webhook_runtime, "DELETE", f"/v1/webhook-endpoints/{endpoint_id}")


def create_endpoint(runtime: RuntimeProcess, url: str, made: list[str]) -> dict[str, Any]:
    endpoint = created(runtime, "/v1/webhook-endpoints", {"url": url, "event_types": ["*"]})
    made.append(endpoint["id"])
    assert endpoint["secret"].startswith("whsec_")
    return endpoint


def test_an_invoice_finalized_by_a_billing_run_is_delivered_signed(
    webhook_runtime: RuntimeProcess, httpserver: HTTPServer, endpoints: list[str]
) -> None:
    runtime = webhook_runtime
    receiver = Receiver(httpserver, "/hooks")
    endpoint = create_endpoint(runtime, receiver.url, endpoints)

    now = datetime.now(UTC).replace(microsecond=0)
    anchor, period = ended_period(now)
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
        "id": customer_id, "name": "Ada Lovelace", "currency": "USD", "timezone": TIMEZONE,
        "billing_anchor_day": anchor, "tax": {"country": "US", "region": "NY", "postal_code": "10001"},
    })  # fmt: skip
    subscription = {"id": subscription_id, "customer_id": customer_id, "plan_id": plan_id,
                    "start": format_instant(period.start_utc)}  # fmt: skip
    created(runtime, "/v1/subscriptions", subscription)
    events: list[dict[str, Any]] = [
        {"id": unique("evt"), "customer_id": customer_id, "type": "api.call",
         "timestamp": format_instant(period.end_utc - timedelta(hours=hours)), "properties": {"tokens": 1000}}
        for hours in (30, 2)
    ]  # fmt: skip
    response = post_events(runtime, {"events": events})
    assert response.status_code == 202, response.text
    for event in events:
        wait_stored(runtime, event["id"], customer_id)

    started = admin(runtime, "POST", "/v1/billing-runs", {})
    assert started.status_code == 202, started.text
    run, _ = wait_for_run(runtime, started.json()["id"])
    assert run["status"] == "succeeded", run
    expected_invoice = invoice_id(runtime.info["tenant_id"], subscription_id, period.start_utc)
    assert expected_invoice in run["invoices"]

    received = receiver.wait_for(1, runtime, "invoice.finalized")
    delivery = received[0]
    # The unmodified Standard Webhooks verifier: signature, webhook-id and a fresh webhook-timestamp.
    verified = Webhook(endpoint["secret"]).verify(delivery.body, delivery.headers)
    body = delivery.json()
    assert verified == body
    assert body["type"] == "invoice.finalized"
    assert body["id"].startswith("evt_")
    assert delivery.headers["webhook-id"] == body["id"]
    assert body["customer_id"] == customer_id
    assert body["sequence"] == 1
    assert body["data"]["invoice_id"] == expected_invoice
    assert body["data"]["subscription_id"] == subscription_id
    assert set(body) == {"type", "id", "customer_id", "sequence", "created_at", "data"}
    assert "Ada Lovelace" not in delivery.body.decode()  # ids and amounts only

    response = admin(runtime, "GET", "/v1/webhook-events", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()["data"]] == [body["id"]]


def test_a_failing_receiver_gets_the_same_delivery_until_it_answers_200(
    webhook_runtime: RuntimeProcess, httpserver: HTTPServer, endpoints: list[str]
) -> None:
    runtime = webhook_runtime
    receiver = Receiver(httpserver, "/flaky", statuses=(500, 500, 500, 200))
    endpoint = create_endpoint(runtime, receiver.url, endpoints)
    # Usage of a customer no subscription covers: the ingest path announces `usage.unbilled`.
    customer_id, event_id = unique("cus"), unique("evt")
    response = post_events(runtime, {"id": event_id, "customer_id": customer_id, "type": "api.call",
                                     "timestamp": format_instant(datetime.now(UTC)),
                                     "properties": {"tokens": 5}})  # fmt: skip
    assert response.status_code == 202, response.text

    requests_seen = receiver.wait_for(4, runtime, "four attempts")

    assert [Webhook(endpoint["secret"]).verify(r.body, r.headers)["type"] for r in requests_seen] == [
        "usage.unbilled"
    ] * 4
    assert len({r.headers["webhook-id"] for r in requests_seen}) == 1  # one delivery, retried
    assert len({r.body for r in requests_seen}) == 1  # the same bytes every time
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    while True:
        response = admin(runtime, "GET", "/v1/webhook-deliveries", params={"endpoint_id": endpoint["id"]})
        assert response.status_code == 200, response.text
        [delivery] = response.json()["data"]
        if delivery["status"] != "pending" or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # the last attempt is recorded just after the receiver answered
    assert delivery["status"] == "succeeded", delivery
    assert delivery["event_id"] == requests_seen[0].headers["webhook-id"]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
    assert delivery["attempts"][3]["error"] is None
    attempts_at = [datetime.fromisoformat(a["at"]) for a in delivery["attempts"]]
    assert all(later - earlier >= timedelta(seconds=1) for earlier, later in pairwise(attempts_at))

    response = admin(
        runtime,
        "GET",
        "/v1/webhook-deliveries",
        params={"endpoint_id": endpoint["id"], "status": "succeeded"},
    )
    assert [d["id"] for d in response.json()["data"]] == [delivery["id"]]
    time.sleep(1.5)
    assert len(receiver.requests) == 4  # nothing more after the 200


@pytest.fixture
def clean_moto() -> Iterator[None]:
    """An in-process runtime's moto keeps its state in this process's moto backends after it stops: clear
    them, so that tests after this one (moto servers of their own in this process) start empty."""
    yield
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


@pytest.mark.usefixtures("clean_moto")
def test_wait_idle_with_webhooks_waits_for_the_deliveries_in_process(httpserver: HTTPServer) -> None:
    """`LocalRuntime.wait_idle(webhooks=True)`: the ingest queue, the outbox stream and the webhook queue
    (its retry timers included) all settled; here with the functions in this process (`in_process`)."""
    receiver = Receiver(httpserver, "/in-process", statuses=(503, 200))
    with LocalRuntime(
        port=0, moto_port=0, in_process=True, schedule_interval_seconds=0, retry_delay_seconds=1,
        webhook_retry_schedule="1,1",
    ) as local:  # fmt: skip
        headers = {"Authorization": f"Bearer {local.admin_key}"}
        response = requests.post(
            f"{local.api_url}/v1/webhook-endpoints",
            json={"url": receiver.url, "event_types": ["usage.unbilled"]},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
        endpoint = response.json()
        event: dict[str, Any] = {"id": unique("evt"), "customer_id": unique("cus"), "type": "api.call",
                 "timestamp": format_instant(datetime.now(UTC)), "properties": {"tokens": 5}}  # fmt: skip
        response = requests.post(
            f"{local.api_url}/v1/events",
            json=event,
            headers={"Authorization": f"Bearer {local.ingest_key}"},
            timeout=10,
        )
        assert response.status_code == 202, response.text

        def state() -> str:
            deliveries = requests.get(
                f"{local.api_url}/v1/webhook-deliveries",
                params={"endpoint_id": endpoint["id"]},
                headers=headers,
                timeout=10,
            )
            return (
                f"receiver got {len(receiver.requests)}; ingest {local.pump and local.pump.stats}; "
                f"stream {local.stream_pump and local.stream_pump.stats}; "
                f"webhooks {local.webhook_pump and local.webhook_pump.stats}; deliveries {deliveries.text}"
            )

        assert local.wait_idle(DELIVERY_TIMEOUT_SECONDS, webhooks=True), state()

        # Settled means delivered: the failed first attempt's timer was waited for, not skipped.
        assert len(receiver.requests) == 2, state()
        assert Webhook(endpoint["secret"]).verify(receiver.requests[1].body, receiver.requests[1].headers)
        assert local.stream_pump is not None
        assert local.stream_pump.stats.records_filtered_out > 0  # the tenant, keys, events' claims...
        assert local.wait_webhooks_idle(1)
