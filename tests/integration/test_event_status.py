"""What became of a stored usage event, on moto through the real api handler and ingest consumer:
GET /v1/events/{id} (counted, late, unbilled, as of the moment it is read), the paged list of a
customer's unbilled events, and the consumer's count of unbilled events (the `EventsUnbilled` metric).

The sample API requests are received 2026-11-25T09:00:00Z and events may be up to 35 days old, so the
timestamps here lie between late October and November 2026. Customers bill in UTC from the 1st.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from billing.bootstrap import get_services
from billing.domain.ingest_messages import pack_events
from billing.domain.usage_events import UsageEvent, parse_timestamp
from billing.services import ingest as ingest_service
from billing.settings import get_settings
from tests.integration.test_cycle_close import PLAN, close, invoice
from tests.support import api_event, call_api, drain, ingest_pump

pytestmark = pytest.mark.usefixtures("aws")

RECEIVED_AT = "2026-11-25T09:00:00Z"  # requestTimeEpoch of the sample API events
OCTOBER = {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
NOVEMBER = {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
UNBILLED = {"status": "unbilled", "subscription_id": None, "period": None}


@pytest.fixture(autouse=True)
def _seller_registered_in_new_york(monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]) -> None:
    monkeypatch.setenv("BILLING_SELLER_TAX_REGISTRATIONS", "US-NY")
    get_settings.cache_clear()
    get_services.cache_clear()


class RecordedMetrics:
    """Stands in for the Powertools metrics of the ingest service: the sum of each metric added."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def add_metric(self, name: str, unit: Any, value: float) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


# ---- helpers: the catalog, sending events, reading them back ------------------------------------------


def api(
    method: str, path: str, body: Any = None, *, tenant: str = "acme", query: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    status, answer, _ = call_api(api_event(method, path, body, tenant_id=tenant, query=query))
    return status, answer


def ok(method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, answer = api(method, path, body)
    assert status in (200, 201), answer
    return answer


def error(answer: dict[str, Any]) -> str:
    assert set(answer) == {"error"}, answer
    assert set(answer["error"]) == {"code", "message", "details"}, answer
    return str(answer["error"]["code"])


def catalog() -> None:
    meter = {"key": "tokens", "event_type": "api.call", "aggregation": "sum", "value_property": "tokens"}
    ok("POST", "/v1/meters", meter)
    ok("POST", "/v1/plans", PLAN)


def customer(customer_id: str = "cus_1") -> None:
    ok(
        "POST",
        "/v1/customers",
        {
            "id": customer_id,
            "currency": "USD",
            "timezone": "UTC",
            "billing_anchor_day": 1,
            "tax": {"country": "US", "region": "NY", "postal_code": "10001"},
        },
    )


def subscribe(customer_id: str, start: str, subscription_id: str = "sub_1") -> None:
    ok(
        "POST",
        "/v1/subscriptions",
        {"id": subscription_id, "customer_id": customer_id, "plan_id": "pro", "start": start},
    )


def cancel(subscription_id: str, at: str) -> None:
    assert ok("POST", f"/v1/subscriptions/{subscription_id}/cancel", {"at": at})["end"] == at


def send(events: list[tuple[str, str]], customer_id: str = "cus_1", tokens: int = 100) -> None:
    """POST /v1/events (ingest scope), then the ingest queue drained through the consumer function."""
    body = {
        "events": [
            {
                "id": event_id,
                "customer_id": customer_id,
                "type": "api.call",
                "timestamp": timestamp,
                "properties": {"tokens": tokens},
            }
            for event_id, timestamp in events
        ]
    }
    status, answer, _ = call_api(api_event("POST", "/v1/events", body, scope="ingest"))
    assert (status, answer["rejected"]) == (202, []), answer
    drain(ingest_pump())


def read(event_id: str, customer_id: str = "cus_1", *, tenant: str = "acme") -> dict[str, Any]:
    status, answer = api("GET", f"/v1/events/{event_id}", tenant=tenant, query={"customer_id": customer_id})
    assert status == 200, answer
    return answer


def status_of(event_id: str, customer_id: str = "cus_1") -> dict[str, Any]:
    answer = read(event_id, customer_id)
    return {key: answer[key] for key in ("status", "subscription_id", "period")}


def unbilled_page(customer_id: str = "cus_1", **query: str) -> dict[str, Any]:
    status, answer = api(
        "GET", "/v1/events", query={"customer_id": customer_id, "status": "unbilled", **query}
    )
    assert status == 200, answer
    assert set(answer) == {"data", "next_cursor"}, answer
    return answer


def unbilled_ids(customer_id: str = "cus_1") -> list[str]:
    """Every unbilled event of the customer, all pages followed (each item checked to read unbilled)."""
    ids: list[str] = []
    query: dict[str, str] = {}
    for _ in range(50):
        page = unbilled_page(customer_id, **query)
        for item in page["data"]:
            assert (item["customer_id"], item["status"]) == (customer_id, "unbilled"), item
            assert (item["subscription_id"], item["period"]) == (None, None), item
        ids += [item["id"] for item in page["data"]]
        if page["next_cursor"] is None:
            return ids
        query = {"cursor": page["next_cursor"]}
    raise AssertionError("the unbilled list never ended")


# ---- counted ------------------------------------------------------------------------------------------


def test_an_event_a_subscription_covers_reads_counted_with_its_subscription_and_period() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    send([("e1", "2026-11-10T12:30:00.250Z"), ("e2", "2026-10-25T10:00:00Z")])

    answer = read("e1")

    assert answer == {
        "id": "e1",
        "customer_id": "cus_1",
        "type": "api.call",
        "timestamp": "2026-11-10T12:30:00.250000Z",
        "received_at": RECEIVED_AT,
        "stored_at": answer["stored_at"],
        "status": "counted",
        "subscription_id": "sub_1",
        "period": NOVEMBER,
    }
    parse_timestamp(answer["stored_at"], "stored_at")  # an RFC 3339 instant
    assert status_of("e2") == {"status": "counted", "subscription_id": "sub_1", "period": OCTOBER}
    # Stored before October was finalized: still counted once October is invoiced.
    [october] = close("2026-11-02T00:00:00Z")
    assert october["status"] == "finalized"
    assert status_of("e2") == {"status": "counted", "subscription_id": "sub_1", "period": OCTOBER}
    assert unbilled_ids() == []


def test_an_event_not_stored_yet_is_404() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    status, answer, _ = call_api(
        api_event(
            "POST",
            "/v1/events",
            {"id": "e1", "customer_id": "cus_1", "type": "api.call", "timestamp": "2026-11-10T00:00:00Z"},
            scope="ingest",
        )
    )
    assert status == 202, answer

    status, answer = api("GET", "/v1/events/e1", query={"customer_id": "cus_1"})
    assert (status, error(answer)) == (404, "event_not_found")  # accepted, still on the queue
    drain(ingest_pump())
    assert read("e1")["status"] == "counted"
    # The same id under another customer is another event.
    status, answer = api("GET", "/v1/events/e1", query={"customer_id": "cus_2"})
    assert (status, error(answer)) == (404, "event_not_found")


# ---- late ---------------------------------------------------------------------------------------------


def test_an_event_stored_after_its_period_was_finalized_reads_late_and_is_billed_as_an_adjustment() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    send([("on-time", "2026-10-25T10:00:00Z")], tokens=900)  # under the free tier: October bills 49.00
    [october] = close("2026-11-02T00:00:00Z")
    assert invoice(october["invoice_id"])["subtotal"] == "49.00"

    send([("late", "2026-10-30T00:00:00Z")], tokens=300)  # October now holds 200 tokens above the tier
    send([("november", "2026-11-03T00:00:00Z")], tokens=10)

    assert status_of("late") == {"status": "late", "subscription_id": "sub_1", "period": OCTOBER}
    assert status_of("on-time")["status"] == "counted"  # stored before the invoice: billed in it
    assert status_of("november") == {"status": "counted", "subscription_id": "sub_1", "period": NOVEMBER}
    assert unbilled_ids() == []

    [november] = close("2026-12-02T00:00:00Z")

    lines = invoice(november["invoice_id"])["lines"]
    [adjustment] = [line for line in lines if line["type"] == "adjustment"]
    assert adjustment["adjusted_invoice_id"] == october["invoice_id"]
    assert adjustment["amount"] == "2.00"  # 200 tokens x 0.01
    # Billed as an adjustment, it still reads late; the November event was billed in November.
    assert status_of("late")["status"] == "late"
    assert status_of("november")["status"] == "counted"


def test_a_late_event_of_a_cancelled_subscription_is_billed_on_the_customers_next_invoice() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    cancel("sub_1", "2026-11-01T00:00:00Z")  # October is sub_1's last period
    subscribe("cus_1", "2026-11-01T00:00:00Z", subscription_id="sub_2")
    send([("on-time", "2026-10-25T10:00:00Z")], tokens=900)
    [october] = close("2026-11-02T00:00:00Z")
    assert invoice(october["invoice_id"])["subtotal"] == "49.00"

    send([("late", "2026-10-30T00:00:00Z")], tokens=300)  # 200 tokens above October's free tier
    assert status_of("late") == {"status": "late", "subscription_id": "sub_1", "period": OCTOBER}

    finals = close("2026-12-02T00:00:00Z")
    # sub_1's November, kept open for late events after its cancel, bills nothing: sub_2 carries them.
    assert sorted(final["status"] for final in finals) == ["finalized", "nothing_to_bill"]
    [november] = [final for final in finals if final["invoice_id"]]  # the customer's next invoice
    assert invoice(november["invoice_id"])["subscription_id"] == "sub_2"
    assert adjustments_of(november) == [(october["invoice_id"], "2.00")]


def adjustments_of(final: dict[str, Any]) -> list[tuple[str, str]]:
    lines = invoice(final["invoice_id"])["lines"]
    return [(line["adjusted_invoice_id"], line["amount"]) for line in lines if line["type"] == "adjustment"]


def test_a_late_event_is_billed_once_when_two_subscriptions_share_the_next_period() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    [october] = close("2026-11-02T00:00:00Z")
    cancel("sub_1", "2026-11-15T00:00:00Z")
    subscribe("cus_1", "2026-11-15T00:00:00Z", subscription_id="sub_2")
    send([("late", "2026-10-30T00:00:00Z")], tokens=1200)  # 200 tokens above October's free tier

    finals = close("2026-12-02T00:00:00Z")

    # Both subscriptions have a November invoice; only the one that runs on (the last to start) carries
    # the correction of October, once.
    carried = {invoice(final["invoice_id"])["subscription_id"]: adjustments_of(final) for final in finals}
    assert carried == {"sub_1": [], "sub_2": [(october["invoice_id"], "2.00")]}
    # December corrects nothing more: the correction billed on sub_2's November counts as billed.
    december = close("2027-01-02T00:00:00Z")
    assert sorted((final["status"], final["invoice_id"] is None) for final in december) == [
        ("finalized", False),
        ("nothing_to_bill", True),
    ]
    assert [adjustments_of(final) for final in december if final["invoice_id"]] == [[]]


def test_a_late_event_of_a_customer_who_left_is_billed_on_a_final_invoice_of_corrections() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    cancel("sub_1", "2026-11-01T00:00:00Z")  # no subscription after it
    [october] = close("2026-11-02T00:00:00Z")
    send([("late", "2026-10-30T00:00:00Z")], tokens=1200)
    assert status_of("late") == {"status": "late", "subscription_id": "sub_1", "period": OCTOBER}

    [november] = close("2026-12-02T00:00:00Z")

    data = invoice(november["invoice_id"])
    assert (data["subscription_id"], data["period"]) == ("sub_1", NOVEMBER)
    assert [line["type"] for line in data["lines"]] == ["adjustment", "tax"]
    assert adjustments_of(november) == [(october["invoice_id"], "2.00")]
    # The event window shuts 36 days after the cancel: one more period is looked at, and billed nothing.
    [december] = close("2027-01-02T00:00:00Z")
    assert (december["status"], december["invoice_id"]) == ("nothing_to_bill", None)
    assert close("2027-03-02T00:00:00Z") == []


def test_a_cancelled_subscription_without_late_events_issues_no_more_invoices() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-01T00:00:00Z")
    cancel("sub_1", "2026-11-01T00:00:00Z")
    [october] = close("2026-11-02T00:00:00Z")

    later = close("2027-03-02T00:00:00Z")

    assert [final["status"] for final in later] == ["nothing_to_bill"]
    status, listed = api("GET", "/v1/invoices", query={"customer_id": "cus_1"})
    assert (status, [item["id"] for item in listed["data"]]) == (200, [october["invoice_id"]])


# ---- unbilled -----------------------------------------------------------------------------------------


def test_events_no_subscription_covers_read_unbilled_with_no_period_or_subscription() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-11-05T00:00:00Z")
    cancel("sub_1", "2026-11-15T00:00:00Z")
    customer("cus_2")  # a customer that never subscribed
    send(
        [
            ("before", "2026-11-04T23:59:59.999999Z"),
            ("first", "2026-11-05T00:00:00Z"),
            ("last", "2026-11-14T23:59:59.999999Z"),
            ("after", "2026-11-15T00:00:00Z"),
            ("long-after", "2026-11-20T00:00:00Z"),
        ]
    )
    send([("x", "2026-11-10T00:00:00Z")], customer_id="cus_2")
    send([("y", "2026-11-10T00:00:00Z")], customer_id="cus_unknown")  # no customer record at all

    for event_id in ("before", "after", "long-after"):
        assert status_of(event_id) == UNBILLED, event_id
    assert status_of("x", "cus_2") == UNBILLED
    assert status_of("y", "cus_unknown") == UNBILLED
    assert read("y", "cus_unknown")["customer_id"] == "cus_unknown"
    # The subscription covers [start, cancel): its first and last instants are counted.
    for event_id in ("first", "last"):
        assert status_of(event_id) == {"status": "counted", "subscription_id": "sub_1", "period": NOVEMBER}


def test_the_unbilled_list_holds_exactly_the_uncovered_events_oldest_first_a_page_at_a_time() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-11-01T00:00:00Z")
    cancel("sub_1", "2026-11-15T00:00:00Z")
    # Sent out of order; ties on the timestamp are ordered by id.
    send(
        [
            ("u-f", "2026-11-20T00:00:00Z"),
            ("c-2", "2026-11-10T00:00:00Z"),
            ("u-c", "2026-10-25T12:00:00Z"),
            ("u-z", "2026-11-15T00:00:00Z"),  # the instant of the cancel: no longer covered
            ("c-1", "2026-11-01T00:00:00Z"),  # the instant of the start: covered
            ("u-a", "2026-10-25T12:00:00Z"),
            ("u-e", "2026-11-20T00:00:00Z"),
            ("c-3", "2026-11-14T23:59:59.999999Z"),
            ("u-d", "2026-10-22T00:00:00Z"),
            ("u-b", "2026-10-25T12:00:00Z"),
        ]
    )
    expected = ["u-d", "u-a", "u-b", "u-c", "u-z", "u-e", "u-f"]

    pages = []
    query: dict[str, str] = {"limit": "3"}
    for _ in range(5):
        page = unbilled_page(**query)
        pages.append([item["id"] for item in page["data"]])
        if page["next_cursor"] is None:
            break
        query = {"limit": "3", "cursor": page["next_cursor"]}

    # Page 1 ends in the middle of a tie (u-b), page 2 spans the gap of the subscription.
    assert pages == [["u-d", "u-a", "u-b"], ["u-c", "u-z", "u-e"], ["u-f"]]
    whole = unbilled_page()
    assert ([item["id"] for item in whole["data"]], whole["next_cursor"]) == (expected, None)
    assert [item["timestamp"] for item in whole["data"]] == [
        "2026-10-22T00:00:00Z",
        "2026-10-25T12:00:00Z",
        "2026-10-25T12:00:00Z",
        "2026-10-25T12:00:00Z",
        "2026-11-15T00:00:00Z",
        "2026-11-20T00:00:00Z",
        "2026-11-20T00:00:00Z",
    ]
    assert {item["status"] for item in whole["data"]} == {"unbilled"}
    assert {(item["subscription_id"], item["period"]) for item in whole["data"]} == {(None, None)}
    assert unbilled_ids() == expected
    # Exactly 7: a limit of 7 is one page with nothing after it.
    page = unbilled_page(limit="7")
    assert (len(page["data"]), page["next_cursor"]) == (7, None)
    for event_id in ("c-1", "c-2", "c-3"):
        assert status_of(event_id)["status"] == "counted"


def test_the_unbilled_list_of_an_unknown_customer_holds_all_its_events() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-11-01T00:00:00Z")
    send(
        [("n-3", "2026-11-12T00:00:00Z"), ("n-1", "2026-10-30T00:00:00Z"), ("n-2", "2026-11-12T00:00:00Z")],
        "cus_9",
    )
    send([("covered", "2026-11-12T00:00:00Z")])

    assert unbilled_ids("cus_9") == ["n-1", "n-2", "n-3"]
    page = unbilled_page("cus_9", limit="2")
    assert [item["id"] for item in page["data"]] == ["n-1", "n-2"]
    assert unbilled_ids("cus_nobody") == []  # an unknown customer without events: an empty list
    assert unbilled_ids() == []


def test_an_unbilled_event_becomes_counted_once_a_subscription_covers_it() -> None:
    catalog()
    customer()
    send([("early", "2026-11-02T00:00:00Z"), ("later", "2026-11-20T00:00:00Z")])
    send([("orphan", "2026-11-03T00:00:00Z")], customer_id="cus_new")  # before the customer exists
    assert status_of("later") == UNBILLED
    assert unbilled_ids() == ["early", "later"]
    assert unbilled_ids("cus_new") == ["orphan"]

    subscribe("cus_1", "2026-11-10T00:00:00Z")
    customer("cus_new")
    subscribe("cus_new", "2026-11-01T00:00:00Z", subscription_id="sub_new")

    assert status_of("later") == {"status": "counted", "subscription_id": "sub_1", "period": NOVEMBER}
    assert status_of("early") == UNBILLED  # before the start
    assert unbilled_ids() == ["early"]
    assert status_of("orphan", "cus_new") == {
        "status": "counted",
        "subscription_id": "sub_new",
        "period": NOVEMBER,
    }
    assert unbilled_ids("cus_new") == []


def test_events_in_the_gap_between_two_subscriptions_are_unbilled() -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-10-25T00:00:00Z")
    cancel("sub_1", "2026-11-05T00:00:00Z")
    subscribe("cus_1", "2026-11-10T00:00:00Z", subscription_id="sub_2")
    send(
        [
            ("before", "2026-10-24T00:00:00Z"),
            ("in-1", "2026-10-30T00:00:00Z"),
            ("gap", "2026-11-07T00:00:00Z"),
            ("in-2", "2026-11-12T00:00:00Z"),
        ]
    )

    assert unbilled_ids() == ["before", "gap"]
    assert status_of("in-1") == {"status": "counted", "subscription_id": "sub_1", "period": OCTOBER}
    assert status_of("in-2") == {"status": "counted", "subscription_id": "sub_2", "period": NOVEMBER}
    # The last page of the listing ends with the gap: nothing after it, though sub_2 runs on.
    page = unbilled_page(limit="1")
    assert [item["id"] for item in page["data"]] == ["before"]
    page = unbilled_page(limit="1", cursor=page["next_cursor"])
    assert ([item["id"] for item in page["data"]], page["next_cursor"]) == (["gap"], None)


# ---- bad requests and other tenants -------------------------------------------------------------------


def test_bad_list_requests_are_400_in_the_error_shape() -> None:
    catalog()
    customer()
    send([("u1", "2026-11-02T00:00:00Z"), ("u2", "2026-11-03T00:00:00Z")])
    not_a_pair = base64.urlsafe_b64encode(b'{"pk": 1}').decode()

    for query in [
        {"customer_id": "cus_1", "status": "counted"},
        {"customer_id": "cus_1", "status": "late"},
        {"customer_id": "cus_1", "status": "everything"},
        {"customer_id": "cus_1"},  # status is required: only unbilled events can be listed
        {"status": "unbilled"},  # no customer
        {"customer_id": "cus_1", "status": "unbilled", "limit": "0"},
        {"customer_id": "cus_1", "status": "unbilled", "limit": "101"},
        {"customer_id": "cus_1", "status": "unbilled", "limit": "ten"},
    ]:
        status, answer = api("GET", "/v1/events", query=query)
        assert status == 400, (query, answer)
        error(answer)
    for cursor in ("not-a-cursor", not_a_pair, "%%%"):
        status, answer = api(
            "GET", "/v1/events", query={"customer_id": "cus_1", "status": "unbilled", "cursor": cursor}
        )
        assert (status, error(answer)) == (400, "invalid_cursor"), cursor
    status, answer = api("GET", "/v1/events/u1")  # no customer_id
    assert status == 400, answer
    error(answer)
    # The bounds of limit are accepted.
    assert len(unbilled_page(limit="1")["data"]) == 1
    assert len(unbilled_page(limit="100")["data"]) == 2


def test_another_tenant_sees_none_of_the_events() -> None:
    catalog()
    customer()
    send([("u1", "2026-11-02T00:00:00Z")])
    assert unbilled_ids() == ["u1"]

    status, answer = api(
        "GET", "/v1/events", tenant="globex", query={"customer_id": "cus_1", "status": "unbilled"}
    )
    assert (status, answer) == (200, {"data": [], "next_cursor": None})
    status, answer = api("GET", "/v1/events/u1", tenant="globex", query={"customer_id": "cus_1"})
    assert (status, error(answer)) == (404, "event_not_found")


# ---- the consumer's count of unbilled events ----------------------------------------------------------


def usage_event(event_id: str, customer_id: str, timestamp: str) -> UsageEvent:
    return UsageEvent(
        tenant_id="acme",
        customer_id=customer_id,
        event_id=event_id,
        type="api.call",
        timestamp=parse_timestamp(timestamp),
        received_at=parse_timestamp(RECEIVED_AT),
        properties={"tokens": 1},
    )


def packed(*events: UsageEvent) -> str:
    [message] = pack_events("acme", list(events), get_settings().sqs_max_message_bytes)
    return message.body()


def test_the_consumer_counts_newly_stored_events_no_subscription_covers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-11-01T00:00:00Z")
    cancel("sub_1", "2026-11-20T00:00:00Z")
    recorded = RecordedMetrics()
    monkeypatch.setattr(ingest_service, "metrics", recorded)
    consumer = get_services().consumer
    body = packed(
        usage_event("in-1", "cus_1", "2026-11-05T00:00:00Z"),
        usage_event("in-2", "cus_1", "2026-11-19T23:59:59Z"),
        usage_event("before", "cus_1", "2026-10-31T23:59:59Z"),
        usage_event("after", "cus_1", "2026-11-20T00:00:00Z"),
        usage_event("stranger-1", "cus_9", "2026-11-05T00:00:00Z"),
        usage_event("stranger-2", "cus_9", "2026-11-06T00:00:00Z"),
    )

    first = consumer.consume(body, "msg-1")

    assert (first.stored, first.duplicates, first.unbilled) == (6, 0, 4)
    assert recorded.counts["EventsUnbilled"] == 4
    assert recorded.counts["EventsStored"] == 6

    again = consumer.consume(body, "msg-1")  # SQS redelivers the message: nothing new is stored

    assert (again.stored, again.duplicates, again.unbilled) == (0, 6, 0)
    assert recorded.counts["EventsUnbilled"] == 4  # not counted twice
    # A message with a duplicate and a new covered event counts only what is new and uncovered.
    mixed = consumer.consume(
        packed(
            usage_event("before", "cus_1", "2026-10-31T23:59:59Z"),
            usage_event("in-3", "cus_1", "2026-11-07T00:00:00Z"),
        ),
        "msg-2",
    )
    assert (mixed.stored, mixed.duplicates, mixed.unbilled) == (1, 1, 0)
    assert recorded.counts["EventsUnbilled"] == 4
    # What it counted is what the API lists as unbilled.
    assert unbilled_ids() == ["before", "after"]
    assert unbilled_ids("cus_9") == ["stranger-1", "stranger-2"]


def test_the_ingest_pump_reports_unbilled_events_in_the_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog()
    customer()
    subscribe("cus_1", "2026-11-01T00:00:00Z")
    recorded = RecordedMetrics()
    monkeypatch.setattr(ingest_service, "metrics", recorded)

    send([("covered", "2026-11-02T00:00:00Z"), ("early", "2026-10-30T00:00:00Z")])
    send([("stranger", "2026-11-02T00:00:00Z")], customer_id="cus_9")

    assert recorded.counts["EventsUnbilled"] == 2
    assert recorded.counts["EventsStored"] == 3
    send([("early", "2026-10-30T00:00:00Z")])  # sent again: a duplicate, not unbilled again
    assert recorded.counts["EventsUnbilled"] == 2
    assert recorded.counts["EventsDuplicate"] == 1
