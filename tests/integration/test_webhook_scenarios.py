"""Webhook behaviours end to end on moto, each named as a sentence: rotation, Retry-After, 410, dead letters
and replays, per-customer order without head-of-line blocking, filters, the SSRF guard, retry storms, and
what each business fact announces. Every delivery asserted on is verified with the unmodified
`standardwebhooks` package, at the time it was sent (the bench's clock runs ahead on retries)."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from billing.adapters.webhook_http import system_resolver
from billing.bootstrap import get_services
from billing.domain.errors import Conflict, InvalidRequest
from billing.domain.webhooks.addresses import IPAddress
from billing.domain.webhooks.deliveries import Delivery, DeliveryStatus
from billing.domain.webhooks.retries import RetrySchedule
from billing.settings import get_settings
from functions.outbox_dispatcher.handler import handler as dispatcher_handler
from local.lambda_context import new_context
from tests.conftest import load_event
from tests.integration.test_cycle_close import PLAN, admin, close, send, set_up_customer
from tests.integration.test_webhooks import billed_customer, library_clock_at, verified
from tests.integration.webhook_support import WebhookBench
from tests.support import api_event, call_api

pytestmark = pytest.mark.usefixtures("aws")

TENANT = "acme"
OCTOBER_CLOSE = "2026-11-02T00:00:00Z"
NOVEMBER_CLOSE = "2026-12-02T00:00:00Z"
METER = {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens"}


@pytest.fixture(autouse=True)
def _loopback_allowed(monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]) -> None:
    monkeypatch.setenv("BILLING_WEBHOOK_ALLOW_LOOPBACK", "true")
    get_settings.cache_clear()
    get_services.cache_clear()


@pytest.fixture
def other_server() -> Iterator[HTTPServer]:
    """A second receiver on loopback (where a redirect points: it must get nothing)."""
    server = HTTPServer(host="127.0.0.1")
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


# ---- helpers -----------------------------------------------------------------------------------------


def requests_of(server: HTTPServer, path: str | None = None) -> list[Request]:
    """The requests the receiver got (at `path` only, when given), in order."""
    return [request for request, _ in server.log if path is None or request.path == path]


def body(request: Request) -> dict[str, Any]:
    return dict(json.loads(request.get_data()))


def check(secret: str, request: Request) -> dict[str, Any]:
    """The request verified as Standard Webhooks with `secret`, at the instant it was signed."""
    with library_clock_at(int(request.headers["webhook-timestamp"])):
        return dict(Webhook(secret).verify(request.get_data(), dict(request.headers)))


def sequences(requests: list[Request]) -> list[int]:
    return [body(request)["sequence"] for request in requests]


def catch_up(bench: WebhookBench) -> None:
    """Move the bench's clock to the real time (facts are stamped by the real clock): an endpoint created
    or enabled now is created or enabled after every fact made so far, as it would be in production."""
    bench.clock.now = max(bench.clock.now, datetime.now(UTC))


def pay(invoice_id: str, amount: str, reference: str) -> dict[str, Any]:
    return admin("POST", f"/v1/invoices/{invoice_id}/payments", {"amount": amount, "reference": reference})


def outbox_of(customer_id: str) -> list[dict[str, Any]]:
    """`GET /v1/webhook-events?customer_id=…`, every page, through the API."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {"customer_id": customer_id, "limit": "100"}
        if cursor:
            query["cursor"] = cursor
        status, page, _ = call_api(api_event("GET", "/v1/webhook-events", query=query))
        assert status == 200, page
        events += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return events


def deliveries_of(bench: WebhookBench, endpoint_id: str) -> list[Delivery]:
    return bench.deliveries.list(TENANT, endpoint_id, None, 100, None).items


def delivery_at(bench: WebhookBench, endpoint_id: str, customer_id: str, sequence: int) -> Delivery:
    [delivery] = [
        delivery
        for delivery in deliveries_of(bench, endpoint_id)
        if (delivery.customer_id, delivery.sequence) == (customer_id, sequence)
    ]
    return delivery


def scripted(answers: list[tuple[int, dict[str, str]]]) -> Callable[[Request], Response]:
    """A receiver answering the given (status, headers) in turn, then 200."""
    pending = list(answers)

    def answer(request: Request) -> Response:
        status, headers = pending.pop(0) if pending else (200, {})
        return Response("x", status=status, headers=headers)

    return answer


class SwitchableResolver:
    """DNS as the test says: names map to addresses, changeable between creation and delivery."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = dict(names)

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        if host not in self.names:
            return system_resolver(host, port)
        return [ipaddress.ip_address(address) for address in self.names[host]]


# ---- 1. secret rotation ------------------------------------------------------------------------------


def test_after_a_rotation_both_secrets_sign_for_24_hours_then_only_the_new_one(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks", method="POST").respond_with_data("ok")
    bench = WebhookBench()
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    old = created.secret
    billed_customer()
    [october] = close(OCTOBER_CLOSE)

    rotated = bench.endpoints.rotate_secret(TENANT, created.endpoint.id)
    new = rotated.secret
    assert new != old
    bench.run()

    [during] = requests_of(httpserver)
    signatures = during.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2
    assert all(signature.startswith("v1,") for signature in signatures)
    assert check(old, during)["sequence"] == 1
    assert check(new, during)["sequence"] == 1

    bench.clock.advance(24 * 3600 + 1)
    pay(october["invoices"][0], "1.00", "wire-1")
    bench.run()

    after = requests_of(httpserver)[1:]
    assert sequences(after) == [2, 3]
    for request in after:
        assert len(request.headers["webhook-signature"].split(" ")) == 1
        check(new, request)
        with pytest.raises(WebhookVerificationError):
            check(old, request)


# ---- 2. Retry-After ----------------------------------------------------------------------------------


@pytest.mark.parametrize("first_status", [429, 503])
def test_a_long_retry_after_delays_the_next_attempt_and_a_short_one_does_not_hurry_it(
    httpserver: HTTPServer, first_status: int
) -> None:
    httpserver.expect_request("/hooks").respond_with_handler(
        scripted([(first_status, {"Retry-After": "3600"}), (503, {"Retry-After": "1"}), (200, {})])
    )
    bench = WebhookBench(schedule=RetrySchedule((5, 300)))
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    billed_customer()
    close(OCTOBER_CLOSE)

    bench.run()

    delivery = delivery_at(bench, created.endpoint.id, "cus_1", 1)
    assert delivery.status is DeliveryStatus.SUCCEEDED
    assert [attempt.status_code for attempt in delivery.attempts] == [first_status, 503, 200]
    first, second, third = (attempt.at for attempt in delivery.attempts)
    # The schedule said 5 s; the receiver asked for an hour: it got (at least) the hour.
    assert timedelta(hours=1) <= second - first < timedelta(hours=1, seconds=5)
    # The schedule says 300 s (plus up to 10% jitter); "Retry-After: 1" does not shorten it.
    assert timedelta(seconds=300) <= third - second < timedelta(seconds=331)
    received = requests_of(httpserver)
    assert len(received) == 3
    stamps = [int(request.headers["webhook-timestamp"]) for request in received]
    assert stamps[1] - stamps[0] >= 3600
    assert stamps[2] - stamps[1] >= 300
    assert len({request.headers["webhook-id"] for request in received}) == 1
    verified(created.secret, httpserver)


# ---- 3. 410 Gone -------------------------------------------------------------------------------------


def test_a_410_disables_the_endpoint_and_enabling_it_resumes_the_pending_deliveries_only(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks").respond_with_handler(scripted([(410, {})]))
    bench = WebhookBench()
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    endpoint_id = created.endpoint.id
    billed_customer()
    [october] = close(OCTOBER_CLOSE)
    invoice_id = october["invoices"][0]
    pay(invoice_id, "10.00", "wire-1")  # sequences 2 and 3: their deliveries exist before the 410

    bench.run()

    verified(created.secret, httpserver)
    assert sequences(requests_of(httpserver)) == [1]
    endpoint = bench.endpoints.get(TENANT, endpoint_id)
    assert endpoint.disabled
    assert endpoint.disabled_reason is not None
    assert "410" in endpoint.disabled_reason
    first = delivery_at(bench, endpoint_id, "cus_1", 1)
    assert first.status is DeliveryStatus.FAILED
    assert [attempt.status_code for attempt in first.attempts] == [410]
    assert [delivery_at(bench, endpoint_id, "cus_1", n).status for n in (2, 3)] == [
        DeliveryStatus.PENDING
    ] * 2

    # While disabled: new facts are not sent (and get no delivery).
    pay(invoice_id, "44.00", "wire-2")  # sequences 4 and 5
    bench.run()
    assert len(requests_of(httpserver)) == 1
    assert {delivery.sequence for delivery in deliveries_of(bench, endpoint_id)} == {1, 2, 3}

    catch_up(bench)
    bench.endpoints.update(TENANT, endpoint_id, disabled=False)
    bench.run()

    assert sequences(requests_of(httpserver)) == [1, 2, 3]
    assert [delivery_at(bench, endpoint_id, "cus_1", n).status for n in (2, 3)] == [
        DeliveryStatus.SUCCEEDED
    ] * 2
    # The events made while it was disabled are listed for reconciliation, never sent.
    assert [event["sequence"] for event in outbox_of("cus_1")] == [1, 2, 3, 4, 5]

    # Facts made after it was enabled again are sent.
    close(NOVEMBER_CLOSE)
    bench.run()
    assert sequences(requests_of(httpserver)) == [1, 2, 3, 6]
    verified(created.secret, httpserver)


# ---- 4. dead letter, then replay ---------------------------------------------------------------------


def test_a_dead_lettered_delivery_is_replayed_with_the_same_id_and_body_within_30_days(
    httpserver: HTTPServer,
) -> None:
    answer = {"status": 500}
    httpserver.expect_request("/hooks").respond_with_handler(
        lambda request: Response("x", status=answer["status"])
    )
    bench = WebhookBench(schedule=RetrySchedule((1, 1, 1)))
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    endpoint_id = created.endpoint.id
    billed_customer()
    close(OCTOBER_CLOSE)

    bench.run()

    failed = delivery_at(bench, endpoint_id, "cus_1", 1)
    assert failed.status is DeliveryStatus.FAILED
    assert [attempt.status_code for attempt in failed.attempts] == [500] * 4
    assert failed.failure_reason
    assert "500" in failed.failure_reason
    dead = requests_of(httpserver)
    assert len(dead) == 4

    answer["status"] = 200
    bench.deliveries.replay(TENANT, failed.id)
    bench.run()

    received = requests_of(httpserver)
    assert len(received) == 5
    replayed = received[-1]
    assert replayed.headers["webhook-id"] == dead[0].headers["webhook-id"] == failed.event_id
    assert replayed.get_data() == dead[0].get_data()
    assert check(created.secret, replayed)["id"] == failed.event_id
    after = bench.store.get_delivery(TENANT, failed.id)
    assert after is not None
    assert after.status is DeliveryStatus.SUCCEEDED
    assert [(attempt.status_code, attempt.replay) for attempt in after.attempts] == [
        (500, False),
        (500, False),
        (500, False),
        (500, False),
        (200, True),
    ]

    bench.endpoints.update(TENANT, endpoint_id, disabled=True)
    with pytest.raises(Conflict) as conflict:
        bench.deliveries.replay(TENANT, failed.id)
    assert conflict.value.code == "endpoint_disabled"
    bench.endpoints.update(TENANT, endpoint_id, disabled=False)

    bench.clock.advance(31 * 86400)
    with pytest.raises(InvalidRequest) as refused:
        bench.deliveries.replay(TENANT, failed.id)
    assert refused.value.code == "replay_window_passed"
    bench.run()
    assert len(requests_of(httpserver)) == 5
    verified(created.secret, httpserver)


# ---- 5. order per customer, no head-of-line blocking -------------------------------------------------


def test_one_customers_failing_events_wait_in_order_while_another_customers_all_arrive(
    httpserver: HTTPServer,
) -> None:
    failures_left = {"cus_1": 3}

    def answer(request: Request) -> Response:
        customer = body(request)["customer_id"]
        if failures_left.get(customer, 0) > 0:
            failures_left[customer] -= 1
            return Response("down", status=500)
        return Response("ok", status=200)

    httpserver.expect_request("/hooks").respond_with_handler(answer)
    bench = WebhookBench(schedule=RetrySchedule((5, 300, 1800, 7200)))
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    set_up_customer("cus_1")
    set_up_customer("cus_2")
    send([("a1", "2026-10-25T10:00:00Z", 1500)], "cus_1")
    send([("b1", "2026-10-25T10:00:00Z", 1500)], "cus_2")
    finals = close(OCTOBER_CLOSE)
    invoices = {
        admin("GET", f"/v1/invoices/{f['invoices'][0]}")["customer_id"]: f["invoices"][0] for f in finals
    }
    for customer in ("cus_1", "cus_2"):
        pay(invoices[customer], "10.00", f"{customer}-wire-1")
        pay(invoices[customer], "44.00", f"{customer}-wire-2")

    bench.run()

    received = requests_of(httpserver)
    of_a = [request for request in received if body(request)["customer_id"] == "cus_1"]
    of_b = [request for request in received if body(request)["customer_id"] == "cus_2"]
    assert sequences(of_b) == [1, 2, 3, 4, 5]
    # A's first event is tried four times (three failures, then success) before its second is sent.
    assert sequences(of_a) == [1, 1, 1, 1, 2, 3, 4, 5]
    first_success_of_a = received.index(of_a[3])
    assert all(received.index(request) < first_success_of_a for request in of_b)
    stamp = int(of_a[0].headers["webhook-timestamp"])
    assert all(int(request.headers["webhook-timestamp"]) == stamp for request in of_b)
    for customer, theirs in (("cus_1", of_a), ("cus_2", of_b)):
        ids = [event["id"] for event in outbox_of(customer)]
        assert list(dict.fromkeys(body(request)["id"] for request in theirs)) == ids
    first_of_a = delivery_at(bench, created.endpoint.id, "cus_1", 1)
    assert [attempt.status_code for attempt in first_of_a.attempts] == [500, 500, 500, 200]
    assert first_of_a.attempts[-1].at <= delivery_at(bench, created.endpoint.id, "cus_1", 2).attempts[0].at
    verified(created.secret, httpserver)


# ---- 6. filters --------------------------------------------------------------------------------------


def test_an_endpoint_for_payment_events_receives_only_those_and_its_lane_moves_past_the_others(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/all").respond_with_data("ok")
    httpserver.expect_request("/payments").respond_with_data("ok")
    bench = WebhookBench()
    everything = bench.endpoints.create(TENANT, httpserver.url_for("/all"), ["*"], None)
    payments = bench.endpoints.create(TENANT, httpserver.url_for("/payments"), ["payment.succeeded"], None)
    billed_customer()
    [october] = close(OCTOBER_CLOSE)
    invoice_id = october["invoices"][0]
    pay(invoice_id, "10.00", "wire-1")
    bench.run()
    pay(invoice_id, "44.00", "wire-2")  # after the lane moved past invoice.partially_paid
    bench.run()

    to_payments = [check(payments.secret, request) for request in requests_of(httpserver, "/payments")]
    assert [(item["type"], item["sequence"]) for item in to_payments] == [
        ("payment.succeeded", 2),
        ("payment.succeeded", 4),
    ]
    assert sorted(delivery.sequence for delivery in deliveries_of(bench, payments.endpoint.id)) == [2, 4]
    to_all = [check(everything.secret, request) for request in requests_of(httpserver, "/all")]
    assert [item["sequence"] for item in to_all] == [1, 2, 3, 4, 5]


# ---- 7. SSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://10.0.0.1/",
        "https://169.254.169.254/",
        "https://[::ffff:169.254.169.254]/",
        "http://example.com/",
        "https://internal.example.test/hooks",
    ],
)
def test_an_endpoint_url_reaching_a_private_or_metadata_address_is_refused_at_creation(url: str) -> None:
    resolver = SwitchableResolver({"example.com": ["93.184.215.14"], "internal.example.test": ["10.1.2.3"]})
    bench = WebhookBench(resolver=resolver)

    with pytest.raises(InvalidRequest) as refused:
        bench.endpoints.create(TENANT, url, ["*"], None)

    assert refused.value.code in ("webhook_url_refused", "invalid_webhook_url")
    assert bench.store.all_endpoints(TENANT) == []


def test_a_name_that_resolves_to_a_private_address_at_delivery_time_is_not_connected_to(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks").respond_with_data("ok")
    loopback = [str(address) for address in system_resolver(httpserver.host, httpserver.port)]
    resolver = SwitchableResolver({"hooks.example.test": loopback})
    bench = WebhookBench(resolver=resolver, schedule=RetrySchedule((1,)))
    url = f"http://hooks.example.test:{httpserver.port}/hooks"
    created = bench.endpoints.create(TENANT, url, ["*"], None)
    resolver.names["hooks.example.test"] = ["10.1.2.3"]  # DNS rebinding after the creation check
    billed_customer()
    close(OCTOBER_CLOSE)

    bench.run()

    assert requests_of(httpserver) == []
    delivery = delivery_at(bench, created.endpoint.id, "cus_1", 1)
    assert delivery.attempts
    for attempt in delivery.attempts:
        assert attempt.status_code is None
        assert attempt.error is not None
        assert attempt.error.startswith("refused:")
        assert "10.1.2.3" in attempt.error
    assert delivery.status is DeliveryStatus.FAILED


def test_a_redirect_is_a_failed_attempt_and_is_never_followed(
    httpserver: HTTPServer, other_server: HTTPServer
) -> None:
    other_server.expect_request("/").respond_with_data("ok")
    httpserver.expect_request("/hooks").respond_with_data(
        "moved", status=302, headers={"Location": f"http://127.0.0.1:{other_server.port}/"}
    )
    bench = WebhookBench(schedule=RetrySchedule((1,)))
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    billed_customer()
    close(OCTOBER_CLOSE)

    bench.run()

    assert len(requests_of(httpserver)) == 2
    assert requests_of(other_server) == []
    delivery = delivery_at(bench, created.endpoint.id, "cus_1", 1)
    assert delivery.status is DeliveryStatus.FAILED
    for attempt in delivery.attempts:
        assert attempt.status_code == 302
        assert attempt.error is not None
        assert "redirect" in attempt.error
    verified(created.secret, httpserver)


# ---- 8. retry storms ---------------------------------------------------------------------------------


def stream_event(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A DynamoDB stream event with one INSERT record per outbox item, shaped like the sample."""
    sample = load_event("dynamodb_outbox_stream.json")
    template = sample["Records"][0]
    records = []
    for position, item in enumerate(items):
        record = copy.deepcopy(template)
        record["eventID"] = f"{position:032x}"
        record["dynamodb"]["Keys"] = {"pk": item["pk"], "sk": item["sk"]}
        record["dynamodb"]["NewImage"] = item
        record["dynamodb"]["SequenceNumber"] = str(4421584500000000017450439091 + position)
        records.append(record)
    return {"Records": records}


def test_a_retry_storm_of_stream_records_closes_and_payments_duplicates_no_fact(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/one").respond_with_data("ok")
    httpserver.expect_request("/two").respond_with_data("ok")
    bench = WebhookBench()
    one = bench.endpoints.create(TENANT, httpserver.url_for("/one"), ["*"], None)
    two = bench.endpoints.create(TENANT, httpserver.url_for("/two"), ["*"], None)
    billed_customer()
    [october] = close(OCTOBER_CLOSE)
    invoice_id = october["invoices"][0]
    assert (
        call_api(
            api_event(
                "POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "10.00", "reference": "wire-1"}
            )
        )[0]
        == 201
    )

    event = stream_event(bench.outbox_items())
    for _ in range(10):
        assert dispatcher_handler(copy.deepcopy(event), new_context("outbox-dispatcher")) == {
            "batchItemFailures": []
        }
    assert close(OCTOBER_CLOSE) == []
    status, again, _ = call_api(
        api_event("POST", f"/v1/invoices/{invoice_id}/payments", {"amount": "10.00", "reference": "wire-1"})
    )
    assert status == 200, again
    event = stream_event(bench.outbox_items())
    for _ in range(10):
        dispatcher_handler(copy.deepcopy(event), new_context("outbox-dispatcher"))

    status, invoices, _ = call_api(api_event("GET", "/v1/invoices", query={"customer_id": "cus_1"}))
    assert status == 200
    periods = [invoice["period"]["start"] for invoice in invoices["data"]]
    assert periods == ["2026-10-01T00:00:00Z"]
    events = outbox_of("cus_1")
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1))
    assert [event["type"] for event in events] == [
        "invoice.finalized",
        "payment.succeeded",
        "invoice.partially_paid",
    ]
    ids = [event["id"] for event in events]
    assert len(set(ids)) == len(ids)
    for endpoint in (one, two):
        made = deliveries_of(bench, endpoint.endpoint.id)
        assert sorted(delivery.event_id for delivery in made) == sorted(ids)

    bench.run()

    for endpoint, path in ((one, "/one"), (two, "/two")):
        got = [check(endpoint.secret, request) for request in requests_of(httpserver, path)]
        assert set(ids) <= {item["id"] for item in got}
        order = [item["sequence"] for item in got]
        assert order == sorted(order)


# ---- 9. usage.unbilled -------------------------------------------------------------------------------


def test_usage_without_a_subscription_is_announced_once_per_customer_and_day(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks").respond_with_data("ok")
    bench = WebhookBench()
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    set_up_customer("cus_1")  # subscribed from 2026-10-01: its events are covered
    admin("POST", "/v1/customers", {"id": "cus_free", "currency": "USD"})

    send([("u2", "2026-10-23T10:00:00Z", 5), ("u1", "2026-10-22T10:00:00Z", 5)], "cus_free")
    send([("u3", "2026-10-26T10:00:00Z", 5)], "cus_free")
    send([("c1", "2026-10-25T10:00:00Z", 5)], "cus_1")
    get_services.cache_clear()  # a fresh consumer process: nothing remembered of what it announced
    send([("u4", "2026-10-27T10:00:00Z", 5)], "cus_free")

    events = outbox_of("cus_free")
    [unbilled] = [event for event in events if event["type"] == "usage.unbilled"]
    assert len(events) == 1
    assert unbilled["sequence"] == 1
    assert unbilled["data"]["first_event_id"] == "u1"
    assert unbilled["data"]["date"] == datetime.now(UTC).date().isoformat()
    assert outbox_of("cus_1") == []

    bench.run()

    [delivered] = verified(created.secret, httpserver)
    assert (delivered["type"], delivered["customer_id"], delivered["id"]) == (
        "usage.unbilled",
        "cus_free",
        unbilled["id"],
    )


# ---- 10. usage.late_event ----------------------------------------------------------------------------


def test_a_late_event_for_a_finalized_period_is_announced_right_after_the_next_invoice(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks").respond_with_data("ok")
    bench = WebhookBench()
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    set_up_customer()
    send([("e1", "2026-10-25T10:00:00Z", 900)])
    [october] = close(OCTOBER_CLOSE)
    send([("late", "2026-10-30T00:00:00Z", 300)])  # 200 tokens above the free tier: 2.00
    [november] = close(NOVEMBER_CLOSE)

    events = outbox_of("cus_1")
    assert [(event["type"], event["sequence"]) for event in events] == [
        ("invoice.finalized", 1),
        ("invoice.finalized", 2),
        ("usage.late_event", 3),
    ]
    finalized, late = events[1], events[2]
    assert finalized["data"]["invoice_id"] == november["invoice_id"]
    assert late["data"]["invoice_id"] == november["invoice_id"]
    assert late["data"]["adjusted_invoice_id"] == october["invoice_id"]
    assert (late["data"]["amount"], late["data"]["currency"]) == ("2.00", "USD")

    bench.run()

    delivered = verified(created.secret, httpserver)
    assert [item["type"] for item in delivered] == [
        "invoice.finalized",
        "invoice.finalized",
        "usage.late_event",
    ]
    assert delivered[2]["data"]["adjusted_invoice_id"] == october["invoice_id"]


# ---- 11. payment events ------------------------------------------------------------------------------


def test_payments_and_credit_announce_paid_and_partially_paid_without_personal_data(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks").respond_with_data("ok")
    bench = WebhookBench()
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    admin("POST", "/v1/meters", METER)
    admin("POST", "/v1/plans", PLAN)
    customer = {"id": "cus_1", "currency": "USD", "name": "Jane Roe", "email": "jane.roe@example.com"}
    admin("POST", "/v1/customers", customer)
    admin(
        "POST",
        "/v1/subscriptions",
        {"id": "sub_1", "customer_id": "cus_1", "plan_id": "pro", "start": "2026-10-01T00:00:00Z"},
    )
    assert admin("GET", "/v1/customers/cus_1")["email"] == "jane.roe@example.com"
    send([("e1", "2026-10-25T10:00:00Z", 1500)])  # 49.00 + 5.00
    [october] = close(OCTOBER_CLOSE)
    invoice_id = october["invoices"][0]

    pay(invoice_id, "20.00", "wire-1")
    # 34.00 settles it, 100.00 becomes credit; the client's reference is an e-mail address this time.
    pay(invoice_id, "134.00", "jane.roe@example.com")
    [november] = close(NOVEMBER_CLOSE)  # 49.00, all of it covered by the credit

    events = outbox_of("cus_1")
    assert [event["type"] for event in events] == [
        "invoice.finalized",
        "payment.succeeded",
        "invoice.partially_paid",
        "payment.succeeded",
        "invoice.paid",
        "invoice.finalized",
        "invoice.paid",
    ]
    assert [event["sequence"] for event in events] == list(range(1, 8))
    assert events[2]["data"]["amount_due"] == "34.00"
    assert events[3]["data"]["credited"] == "100.00"
    assert "reference" not in events[3]["data"]  # free text: only its SHA-256 is sent
    assert events[1]["data"]["reference_sha256"] == hashlib.sha256(b"wire-1").hexdigest()
    assert (events[4]["data"]["invoice_id"], events[4]["data"]["amount_due"]) == (invoice_id, "0.00")
    nov_id = november["invoices"][0]
    assert events[5]["data"]["invoice_id"] == events[6]["data"]["invoice_id"] == nov_id
    assert (events[6]["data"]["credit_applied"], events[6]["data"]["amount_due"]) == ("49.00", "0.00")

    bench.run()

    delivered = verified(created.secret, httpserver)
    assert [item["id"] for item in delivered] == [event["id"] for event in events]
    for request in requests_of(httpserver):
        raw = request.get_data().decode()
        assert "Jane" not in raw
        assert "Roe" not in raw
        assert "jane.roe@example.com" not in raw
        assert "example.com" not in raw


# ---- 12. endpoints created later, endpoints deleted --------------------------------------------------


def test_an_endpoint_gets_only_events_made_after_it_and_a_deleted_one_gets_nothing_more(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/early").respond_with_data("ok")
    httpserver.expect_request("/late").respond_with_data("ok")
    bench = WebhookBench()
    early = bench.endpoints.create(TENANT, httpserver.url_for("/early"), ["*"], None)
    billed_customer()
    [october] = close(OCTOBER_CLOSE)
    catch_up(bench)
    late = bench.endpoints.create(TENANT, httpserver.url_for("/late"), ["*"], None)

    bench.run()

    assert [check(early.secret, request)["sequence"] for request in requests_of(httpserver, "/early")] == [1]
    assert requests_of(httpserver, "/late") == []
    assert deliveries_of(bench, late.endpoint.id) == []

    pay(october["invoices"][0], "10.00", "wire-1")
    bench.dispatch()  # deliveries for both endpoints exist, their lanes kicked ...
    assert len(deliveries_of(bench, early.endpoint.id)) == 3
    bench.endpoints.delete(TENANT, early.endpoint.id)  # ... then one endpoint is deleted
    bench.run()

    assert len(requests_of(httpserver, "/early")) == 1
    assert [check(late.secret, request)["sequence"] for request in requests_of(httpserver, "/late")] == [2, 3]


@pytest.mark.parametrize("change", ["disable", "delete"])
def test_an_endpoint_disabled_or_deleted_while_its_lane_is_walked_receives_nothing_more(
    httpserver: HTTPServer, change: str
) -> None:
    bench = WebhookBench()
    endpoint: dict[str, str] = {}

    def answer(request: Request) -> Response:
        # The tenant disables (or deletes) the endpoint while the first event is being delivered.
        if len(httpserver.log) == 0:
            if change == "disable":
                bench.endpoints.update(TENANT, endpoint["id"], disabled=True)
            else:
                bench.endpoints.delete(TENANT, endpoint["id"])
        return Response("ok", status=200)

    httpserver.expect_request("/hooks").respond_with_handler(answer)
    created = bench.endpoints.create(TENANT, httpserver.url_for("/hooks"), ["*"], None)
    endpoint["id"] = created.endpoint.id
    billed_customer()
    [october] = close(OCTOBER_CLOSE)
    pay(october["invoices"][0], "10.00", "wire-1")  # sequences 2 and 3, in the same lane

    bench.run()

    verified(created.secret, httpserver)
    assert sequences(requests_of(httpserver)) == [1]
