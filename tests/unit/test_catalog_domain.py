"""The catalog's pure rules, without AWS: customer profiles (tax history, payment tokens, subscription spans),
subscription records and their segments, and the checks every catalog request gets."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.adapters import records
from billing.api.models.catalog import CustomerOut, MeterOut, PlanOut, SubscriptionOut, TaxOut
from billing.domain.catalog import (
    CustomerProfile,
    MeterRecord,
    PaymentMethod,
    PlanRecord,
    SegmentRecord,
    SubscriptionRecord,
    SubscriptionSpan,
    TaxLocation,
    TaxLocationChange,
    catalog_id,
    json_number,
    new_customer,
    parse_instant,
    patch_customer,
    reject_card_numbers,
    reject_unknown_fields,
    require_price_strings,
)
from billing.domain.errors import BillingError, Conflict, InvalidRequest
from billing.domain.rating.customers import Customer
from billing.domain.rating.errors import InvalidCatalog
from billing.domain.rating.meters import Aggregation, Meter
from billing.domain.rating.periods import format_instant
from billing.domain.rating.plans import Plan, Subscription
from tests.integration.catalog_builders import CUSTOMER
from tests.unit.rating.builders import API_PLAN, at, plan


def shown(profile: CustomerProfile, now: datetime) -> dict[str, Any]:
    """The customer as the API shows it at `now`."""
    return CustomerOut.of(profile, now).model_dump(mode="json")


def subscription_shown(record: SubscriptionRecord) -> dict[str, Any]:
    return SubscriptionOut.of(record).model_dump(mode="json")


def tax_json(tax: TaxLocation | None) -> dict[str, Any] | None:
    return None if tax is None else TaxOut.of(tax).model_dump(mode="json")


NY = CUSTOMER["tax"]
CA = {"country": "US", "region": "CA", "postal_code": "94103", "tax_id": None, "exempt": False}
DE = {"country": "DE", "region": None, "postal_code": None, "tax_id": "DE123456789", "exempt": False}

CREATED = at("2026-11-01T09:00:00Z")
NOW = at("2026-11-25T09:00:00Z")
NOVEMBER_NY = at("2026-11-01T04:00:00Z")  # midnight of 1 November in New York
CARD = "4111111111111111"  # Luhn-valid: a card number
SECOND = timedelta(seconds=1)
MICROSECOND = timedelta(microseconds=1)


def customer(**overrides: Any) -> dict[str, Any]:
    """API.md's customer body with top-level fields overridden."""
    return {**copy.deepcopy(CUSTOMER), **overrides}


def profile(body: dict[str, Any] | None = None, *, now: datetime = CREATED) -> CustomerProfile:
    return new_customer(customer() if body is None else body, now)


def subscribed(who: CustomerProfile, *spans: SubscriptionSpan) -> CustomerProfile:
    for span in spans:
        who = who.with_subscription(span)
    return who


def refused(call: Callable[..., Any], *args: Any) -> tuple[str, str | None]:
    """The (code, field) a catalog rule refuses with."""
    with pytest.raises(InvalidCatalog) as caught:
        call(*args)
    assert caught.value.message
    assert caught.value.details == ([{"field": caught.value.field}] if caught.value.field else [])
    return caught.value.code, caught.value.field


def tax(data: dict[str, Any]) -> TaxLocation:
    return TaxLocation.from_json(data)


# ---- customers: creation -----------------------------------------------------------------------------


def test_api_md_customer_is_accepted_and_shown_as_sent() -> None:
    ada = profile()

    body = shown(ada, NOW)

    assert {key: body[key] for key in CUSTOMER} == CUSTOMER
    assert body["tax_history"] == [{"effective_at": None, "tax": NY}]
    assert body["subscriptions"] == []
    assert (body["created_at"], body["updated_at"]) == ("2026-11-01T09:00:00Z", "2026-11-01T09:00:00Z")
    assert (ada.id, ada.revision, ada.billing.cycle.timezone) == ("cus_42", 0, "America/New_York")


def test_minimal_customer_bills_in_utc_from_the_first_of_the_month_without_tax_or_payment() -> None:
    minimal = new_customer({"id": "c1", "currency": "EUR"}, CREATED)

    assert minimal.billing == Customer("c1", "EUR", "UTC", 1)
    assert (minimal.name, minimal.email, minimal.payment_method) == (None, None, None)
    assert (minimal.tax_history, minimal.tax_at(NOW), minimal.subscriptions) == ((), None, ())
    # Explicit nulls mean the same as absent fields.
    explicit = new_customer(
        {"id": "c1", "currency": "EUR", "timezone": None, "billing_anchor_day": None, "name": None,
         "email": None, "tax": None, "payment_method": None},
        CREATED,
    )  # fmt: skip
    assert explicit == minimal


def test_creation_time_is_kept_in_utc_and_a_naive_now_is_a_programming_error() -> None:
    berlin = timezone(timedelta(hours=1))

    ada = profile(now=datetime(2026, 11, 1, 10, 0, tzinfo=berlin))

    assert ada.created_at == ada.updated_at == CREATED
    assert ada.created_at.tzinfo is UTC
    with pytest.raises(TypeError):
        profile(now=datetime(2026, 11, 1, 9, 0))  # the point of the test


@pytest.mark.parametrize(
    ("changes", "code", "field"),
    [
        # id: required, plain (it appears in keys, paths and logs), never an e-mail address
        ({"id": None}, "invalid_customer", "id"),
        ({"id": ""}, "invalid_customer", "id"),
        ({"id": 42}, "invalid_customer", "id"),
        ({"id": "user@example.com"}, "invalid_customer", "id"),
        ({"id": "a/b"}, "invalid_customer", "id"),
        ({"id": "a#b"}, "invalid_customer", "id"),
        ({"id": "cus 42"}, "invalid_customer", "id"),
        ({"id": "4242424242424242"}, "invalid_customer", "id"),  # a card number
        ({"id": "c" * 129}, "invalid_customer", "id"),
        ({"id": "cus_42\n"}, "invalid_customer", "id"),
        # billing settings
        ({"currency": None}, "invalid_customer", "currency"),
        ({"currency": "XYZ"}, "unknown_currency", "currency"),
        ({"currency": "usd"}, "unknown_currency", "currency"),
        ({"timezone": "Mars/Olympus_Mons"}, "unknown_timezone", "timezone"),
        ({"timezone": "localtime"}, "unknown_timezone", "timezone"),
        ({"timezone": 5}, "unknown_timezone", "timezone"),
        ({"billing_anchor_day": 0}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": 29}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": "1"}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": 1.5}, "invalid_anchor_day", "billing_anchor_day"),
        ({"billing_anchor_day": True}, "invalid_anchor_day", "billing_anchor_day"),
        # personal data
        ({"name": ""}, "invalid_customer", "name"),
        ({"name": " Ada"}, "invalid_customer", "name"),
        ({"name": "Ada "}, "invalid_customer", "name"),
        ({"name": "Ada\nLovelace"}, "invalid_customer", "name"),
        ({"name": "Ada\u200bLovelace"}, "invalid_customer", "name"),  # a format character
        ({"name": "x" * 257}, "invalid_customer", "name"),
        ({"name": 7}, "invalid_customer", "name"),
        ({"email": "not-an-address"}, "invalid_customer", "email"),
        ({"email": "ada@example"}, "invalid_customer", "email"),
        ({"email": "ada lovelace@example.com"}, "invalid_customer", "email"),
        ({"email": "ada@@example.com"}, "invalid_customer", "email"),
        ({"email": "a" * 243 + "@example.com"}, "invalid_customer", "email"),  # 255 characters
        ({"email": "ada@example.com\n"}, "invalid_customer", "email"),
        ({"email": ["ada@example.com"]}, "invalid_customer", "email"),
        # tax location
        ({"tax": "US"}, "invalid_customer", "tax"),
        ({"tax": {}}, "invalid_customer", "tax.country"),
        ({"tax": {"country": "usa"}}, "invalid_customer", "tax.country"),
        ({"tax": {"country": "us"}}, "invalid_customer", "tax.country"),
        ({"tax": {"country": "US\n"}}, "invalid_customer", "tax.country"),
        ({"tax": {"country": "US", "vat": "x"}}, "invalid_customer", "vat"),
        ({"tax": {"country": "US", "region": "New York"}}, "invalid_customer", "tax.region"),
        ({"tax": {"country": "US", "region": "ny"}}, "invalid_customer", "tax.region"),
        ({"tax": {"country": "US", "region": "US-NY"}}, "invalid_customer", "tax.region"),
        ({"tax": {"country": "US", "postal_code": "-10001"}}, "invalid_customer", "tax.postal_code"),
        ({"tax": {"country": "US", "postal_code": 10001}}, "invalid_customer", "tax.postal_code"),
        ({"tax": {"country": "US", "postal_code": "1" * 17}}, "invalid_customer", "tax.postal_code"),
        ({"tax": {"country": "DE", "tax_id": " DE1"}}, "invalid_customer", "tax.tax_id"),
        ({"tax": {"country": "DE", "tax_id": "DE1;DROP"}}, "invalid_customer", "tax.tax_id"),
        ({"tax": {"country": "US", "exempt": "no"}}, "invalid_customer", "tax.exempt"),
        ({"tax": {"country": "US", "exempt": 0}}, "invalid_customer", "tax.exempt"),
        # payment method: a gateway's token, never the card
        ({"payment_method": "tok_1"}, "invalid_customer", "payment_method"),
        ({"payment_method": {"token": "tok_1", "gateway": "sandbox", "cvc": "123"}}, "invalid_customer",
         "cvc"),
        ({"payment_method": {"gateway": "sandbox"}}, "invalid_payment_method", "payment_method.token"),
        ({"payment_method": {"token": "1234567890", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "tk", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "t" * 256, "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "tok 1", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "tok_1\n", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"payment_method": {"token": "tok_1"}}, "invalid_payment_method", "payment_method.gateway"),
        ({"payment_method": {"token": "tok_1", "gateway": "Stripe!"}}, "invalid_payment_method",
         "payment_method.gateway"),
        ({"payment_method": {"token": "tok_1", "gateway": "Sandbox"}}, "invalid_payment_method",
         "payment_method.gateway"),
        ({"payment_method": {"token": "tok_1", "gateway": "sandbox\n"}}, "invalid_payment_method",
         "payment_method.gateway"),
        # anything else is a mistake, named rather than ignored
        ({"nickname": "x"}, "invalid_customer", "nickname"),
        ({"zeta": 1, "alpha": 2}, "invalid_customer", "alpha"),
        ({"tax_history": []}, "invalid_customer", "tax_history"),
        ({"tax_effective_at": "2026-11-01T00:00:00Z"}, "invalid_customer", "tax_effective_at"),
    ],
)  # fmt: skip
def test_invalid_customers_are_refused_with_a_code_naming_the_field(
    changes: dict[str, Any], code: str, field: str
) -> None:
    assert refused(new_customer, customer(**changes), CREATED) == (code, field)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id": "c" * 128}, {"id": "c" * 128}),
        ({"id": "Acme:cus.42-a_b"}, {"id": "Acme:cus.42-a_b"}),
        ({"name": "x" * 256}, {"name": "x" * 256}),
        ({"name": "Zoë Ōtomo-Ng"}, {"name": "Zoë Ōtomo-Ng"}),
        ({"email": "a" * 242 + "@example.com"}, {"email": "a" * 242 + "@example.com"}),
        ({"tax": {"country": "CA", "region": "ON"}},
         {"tax": {"country": "CA", "region": "ON", "postal_code": None, "tax_id": None, "exempt": False}}),
        ({"tax": {"country": "DE", "postal_code": "SW1A 1AA", "tax_id": "GB 123/456.78-9", "exempt": None}},
         {"tax": {"country": "DE", "region": None, "postal_code": "SW1A 1AA", "tax_id": "GB 123/456.78-9",
                  "exempt": False}}),
        ({"payment_method": {"token": "pm_" + "x" * 252, "gateway": "adyen-eu_2"}},
         {"payment_method": {"token": "pm_" + "x" * 252, "gateway": "adyen-eu_2"}}),
        ({"billing_anchor_day": 28, "timezone": "Pacific/Tongatapu"},
         {"billing_anchor_day": 28, "timezone": "Pacific/Tongatapu"}),
    ],
)  # fmt: skip
def test_values_at_the_edge_of_each_rule_are_accepted(
    changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = shown(profile(customer(**changes)), NOW)

    assert {key: body[key] for key in expected} == expected


def test_a_body_that_is_not_an_object_is_refused() -> None:
    for body in ([], "cus_42", None, 42):
        assert refused(new_customer, body, CREATED) == ("invalid_customer", "the customer")
        assert refused(patch_customer, profile(), body, NOW) == ("invalid_customer", "the customer")


# ---- customers: personal data out of repr -------------------------------------------------------------


def test_repr_of_a_profile_never_shows_name_email_tax_id_or_token() -> None:
    secrets = {
        "name": "Grace Hopper",
        "email": "grace@example.org",
        "tax_id": "DE999888777",
        "token": "pm_Zq9",
    }
    grace = profile(
        customer(
            name=secrets["name"],
            email=secrets["email"],
            tax={"country": "DE", "tax_id": secrets["tax_id"]},
            payment_method={"token": secrets["token"], "gateway": "sandbox"},
        )
    )
    grace = patch_customer(grace, {"tax": {"country": "DE", "tax_id": "DE111222333"}}, NOW)
    grace = grace.with_subscription(SubscriptionSpan("sub_1", NOVEMBER_NY))
    shown = [
        repr(grace),
        str(grace),
        repr(grace.tax_history),
        repr(grace.tax_at(NOW)),
        repr(grace.payment_method),
        f"{grace!r} {grace.tax_at(CREATED)} {grace.payment_method}",
    ]

    for text in shown:
        for secret in (*secrets.values(), "DE111222333", "Grace", "grace@"):
            assert secret not in text
    assert "cus_42" in repr(grace)  # what a log line needs to find the customer stays
    assert "sub_1" in repr(grace)
    assert "sandbox" in repr(grace.payment_method)


# ---- customers: tax location history ------------------------------------------------------------------


def test_the_first_tax_location_is_in_effect_from_the_beginning() -> None:
    ada = profile()

    assert ada.tax_history == (TaxLocationChange(None, tax(NY)),)
    assert ada.tax_at(datetime(1970, 1, 1, tzinfo=UTC)) == tax(NY)
    assert ada.tax_at(datetime(9999, 12, 31, tzinfo=UTC)) == tax(NY)


def test_a_tax_change_applies_from_its_effective_instant_and_earlier_instants_keep_the_old_location() -> None:
    moved = patch_customer(profile(), {"tax": CA, "tax_effective_at": "2026-11-15T12:00:00-05:00"}, NOW)
    change = at("2026-11-15T17:00:00Z")

    assert moved.tax_history == (TaxLocationChange(None, tax(NY)), TaxLocationChange(change, tax(CA)))
    assert moved.tax_at(change - MICROSECOND) == tax(NY)
    assert moved.tax_at(change) == tax(CA)  # the boundary belongs to the new location
    assert moved.tax_at(change + MICROSECOND) == tax(CA)
    # The instant is compared as an instant, whatever offset it is written in.
    assert moved.tax_at(datetime(2026, 11, 15, 12, 0, tzinfo=timezone(-timedelta(hours=5)))) == tax(CA)
    assert moved.tax_at(datetime(2026, 11, 15, 11, 59, 59, tzinfo=timezone(-timedelta(hours=5)))) == tax(NY)
    assert shown(moved, NOW)["tax"] == CA
    assert shown(moved, change - SECOND)["tax"] == NY
    assert shown(moved, NOW)["tax_history"] == [
        {"effective_at": None, "tax": NY},
        {"effective_at": "2026-11-15T17:00:00Z", "tax": CA},
    ]
    assert moved.updated_at == NOW


def test_a_tax_change_without_an_effective_time_applies_from_now() -> None:
    moved = patch_customer(profile(), {"tax": DE}, NOW)

    assert moved.tax_history[-1] == TaxLocationChange(NOW, tax(DE))
    assert moved.tax_at(NOW - MICROSECOND) == tax(NY)
    assert moved.tax_at(NOW) == tax(DE)


def test_a_first_tax_location_given_later_still_applies_from_the_beginning() -> None:
    # With no location before it there is nothing to fall back on: the first one known is the one used.
    untaxed = new_customer({"id": "c1", "currency": "USD"}, CREATED)

    located = patch_customer(untaxed, {"tax": DE, "tax_effective_at": "2026-11-20T00:00:00Z"}, NOW)

    assert located.tax_history == (TaxLocationChange(None, tax(DE)),)
    assert located.tax_at(CREATED) == tax(DE)


def test_tax_history_is_only_ever_appended_to() -> None:
    moved = patch_customer(profile(), {"tax": CA, "tax_effective_at": "2026-11-15T17:00:00Z"}, NOW)

    for effective_at in ("2026-11-15T17:00:00Z", "2026-11-15T16:59:59.999999Z", "2026-11-10T00:00:00Z"):
        body = {"tax": DE, "tax_effective_at": effective_at}
        assert refused(patch_customer, moved, body, NOW) == ("invalid_customer", "tax_effective_at")
    later = patch_customer(moved, {"tax": DE, "tax_effective_at": "2026-11-15T17:00:00.000001Z"}, NOW)
    assert [change.tax for change in later.tax_history] == [tax(NY), tax(CA), tax(DE)]
    # After the first location (in effect from the beginning) any instant is later.
    early = patch_customer(profile(), {"tax": CA, "tax_effective_at": "1999-01-01T00:00:00Z"}, NOW)
    assert early.tax_history[-1].effective_at == at("1999-01-01T00:00:00Z")


def test_the_same_tax_location_again_is_no_change_so_a_retried_patch_is_harmless() -> None:
    moved = patch_customer(profile(), {"tax": CA, "tax_effective_at": "2026-11-15T17:00:00Z"}, NOW)
    later = NOW + timedelta(days=1)

    for body in ({"tax": CA}, {"tax": CA, "tax_effective_at": "2026-11-15T17:00:00Z"}, {"tax": dict(CA)}):
        assert patch_customer(moved, body, later) is moved
    # Going back to an earlier location is a change like any other.
    back = patch_customer(moved, {"tax": NY}, later)
    assert [change.tax for change in back.tax_history] == [tax(NY), tax(CA), tax(NY)]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"tax": None}, "invalid_customer", "tax"),
        ({"tax_effective_at": "2026-11-20T00:00:00Z"}, "invalid_customer", "tax"),
        ({"tax": None, "tax_effective_at": "2026-11-20T00:00:00Z"}, "invalid_customer", "tax"),
        ({"tax": CA, "tax_effective_at": "2026-11-20"}, "invalid_timestamp", "tax_effective_at"),
        ({"tax": CA, "tax_effective_at": "2026-11-20T00:00:00"}, "invalid_timestamp", "tax_effective_at"),
        ({"tax": CA, "tax_effective_at": 1_763_596_800}, "invalid_timestamp", "tax_effective_at"),
        ({"tax": {"country": "XX1"}}, "invalid_customer", "tax.country"),
    ],
)
def test_a_tax_location_can_be_replaced_never_removed_and_its_effective_time_is_rfc_3339(
    body: dict[str, Any], code: str, field: str
) -> None:
    assert refused(patch_customer, profile(), body, NOW) == (code, field)


LOCATIONS = [
    tax({"country": country, "postal_code": f"{n:05d}"}) for n, country in enumerate(["US", "DE", "FR"])
]


@settings(max_examples=80)
@given(
    first=st.sampled_from(LOCATIONS),
    changes=st.lists(
        st.tuples(st.integers(min_value=1, max_value=10**7), st.sampled_from(LOCATIONS)), max_size=8
    ),
    probes=st.lists(st.integers(min_value=-(10**6), max_value=2 * 10**7), min_size=1, max_size=10),
)
def test_tax_at_is_the_last_change_at_or_before_the_instant(
    first: TaxLocation, changes: list[tuple[int, TaxLocation]], probes: list[int]
) -> None:
    """Whatever increasing changes are patched in, tax_at returns the last one at or before the instant."""
    who = profile(customer(tax=tax_json(first)))
    expected: list[tuple[datetime | None, TaxLocation]] = [(None, first)]
    offset = 0
    for step, location in changes:
        offset += step
        effective = CREATED + timedelta(seconds=offset)
        who = patch_customer(
            who, {"tax": tax_json(location), "tax_effective_at": format_instant(effective)}, NOW
        )
        if location != expected[-1][1]:
            expected.append((effective, location))

    assert [(change.effective_at, change.tax) for change in who.tax_history] == expected
    for probe in probes:
        instant = CREATED + timedelta(seconds=probe)
        in_effect = [
            location for effective, location in expected if effective is None or effective <= instant
        ]
        assert who.tax_at(instant) == in_effect[-1]
        assert who.tax_at(instant) == who.tax_at(instant.astimezone(timezone(timedelta(hours=-7))))


@settings(max_examples=40)
@given(steps_back=st.integers(min_value=0, max_value=10**6))
def test_any_change_not_after_the_latest_is_refused(steps_back: int) -> None:
    latest = CREATED + timedelta(days=5)
    moved = patch_customer(profile(), {"tax": CA, "tax_effective_at": format_instant(latest)}, NOW)
    slipped_in = format_instant(latest - timedelta(microseconds=steps_back))

    assert refused(patch_customer, moved, {"tax": DE, "tax_effective_at": slipped_in}, NOW) == (
        "invalid_customer",
        "tax_effective_at",
    )


# ---- customers: PATCH ---------------------------------------------------------------------------------


def test_patch_replaces_personal_data_and_null_clears_it() -> None:
    ada = profile()

    changed = patch_customer(
        ada, {"name": "Ada King", "email": None, "payment_method": {"token": "pm_2", "gateway": "adyen"}}, NOW
    )

    assert (changed.name, changed.email, changed.payment_method) == (
        "Ada King",
        None,
        PaymentMethod("pm_2", "adyen"),
    )
    assert (changed.created_at, changed.updated_at, changed.revision) == (CREATED, NOW, ada.revision)
    assert (changed.billing, changed.tax_history) == (ada.billing, ada.tax_history)
    cleared = patch_customer(changed, {"name": None, "payment_method": None}, NOW)
    assert (cleared.name, cleared.email, cleared.payment_method) == (None, None, None)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"id": "cus_42"},
        {"name": "Ada Lovelace", "email": "ada@example.com"},
        {"currency": "USD", "timezone": "America/New_York", "billing_anchor_day": 1},
        {"payment_method": {"token": "tok_1N3xExampleToken", "gateway": "sandbox"}},
        {"tax": NY},
    ],
)
def test_a_patch_that_changes_nothing_returns_the_same_profile_untouched(body: dict[str, Any]) -> None:
    ada = profile()

    assert patch_customer(ada, body, NOW) is ada


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"id": "cus_43"}, "invalid_customer", "id"),
        ({"nickname": "x"}, "invalid_customer", "nickname"),
        ({"subscriptions": []}, "invalid_customer", "subscriptions"),
        ({"created_at": "2026-01-01T00:00:00Z"}, "invalid_customer", "created_at"),
        ({"name": ""}, "invalid_customer", "name"),
        ({"email": "ada"}, "invalid_customer", "email"),
        ({"payment_method": {"token": "4242", "gateway": "sandbox"}}, "invalid_payment_method",
         "payment_method.token"),
        ({"currency": None}, "invalid_customer", "currency"),
        ({"timezone": None}, "invalid_customer", "timezone"),
        ({"billing_anchor_day": None}, "invalid_customer", "billing_anchor_day"),
        ({"currency": "EURO"}, "unknown_currency", "currency"),
        ({"timezone": "Europe/Atlantis"}, "unknown_timezone", "timezone"),
        ({"billing_anchor_day": 31}, "invalid_anchor_day", "billing_anchor_day"),
        ({"name": "Ada King", "email": "broken"}, "invalid_customer", "email"),
    ],
)  # fmt: skip
def test_invalid_patches_are_refused_with_a_code_naming_the_field(
    body: dict[str, Any], code: str, field: str
) -> None:
    ada = profile()
    before = copy.deepcopy(records.customer_record(ada))

    assert refused(patch_customer, ada, body, NOW) == (code, field)
    assert records.customer_record(ada) == before


def test_currency_timezone_and_anchor_change_while_there_is_no_subscription() -> None:
    ada = profile()

    moved = patch_customer(
        ada, {"currency": "EUR", "timezone": "Europe/Berlin", "billing_anchor_day": 15}, NOW
    )

    assert moved.billing == Customer("cus_42", "EUR", "Europe/Berlin", 15)
    assert moved.updated_at == NOW


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"currency": "EUR"}, "currency"),
        ({"timezone": "UTC"}, "timezone"),
        ({"billing_anchor_day": 15}, "billing_anchor_day"),
        ({"currency": "USD", "timezone": "UTC"}, "timezone cannot change"),  # only what moves is named
        ({"currency": "EUR", "billing_anchor_day": 2}, "currency, billing_anchor_day cannot change"),
    ],
)
def test_currency_timezone_and_anchor_cannot_change_once_there_is_a_subscription(
    body: dict[str, Any], named: str
) -> None:
    running = subscribed(profile(), SubscriptionSpan("sub_1", NOVEMBER_NY))
    cancelled = running.with_subscription_end("sub_1", NOVEMBER_NY + timedelta(days=3))

    for who in (running, cancelled):  # a cancelled subscription's periods are still billed on them
        with pytest.raises(Conflict) as caught:
            patch_customer(who, body, NOW)
        assert caught.value.code == "customer_has_subscription"
        assert caught.value.message.startswith(named)


def test_restating_the_billing_settings_is_no_change_even_with_a_subscription() -> None:
    running = subscribed(profile(), SubscriptionSpan("sub_1", NOVEMBER_NY))

    same = {"currency": "USD", "timezone": "America/New_York", "billing_anchor_day": 1}
    assert patch_customer(running, same, NOW) is running
    renamed = patch_customer(running, {**same, "name": "Ada King"}, NOW)
    assert (renamed.name, renamed.billing, renamed.subscriptions) == (
        "Ada King",
        running.billing,
        running.subscriptions,
    )


# ---- customers: subscription spans --------------------------------------------------------------------

NOV_10 = at("2026-11-10T00:00:00Z")
NOV_20 = at("2026-11-20T00:00:00Z")
DEC_1_NY = at("2026-12-01T05:00:00Z")


def test_a_customer_has_one_subscription_at_a_time() -> None:
    ended = subscribed(profile(), SubscriptionSpan("sub_1", NOVEMBER_NY)).with_subscription_end(
        "sub_1", NOV_10
    )

    for start in (NOVEMBER_NY - SECOND, NOVEMBER_NY, NOV_10 - MICROSECOND):
        with pytest.raises(Conflict) as caught:
            ended.with_subscription(SubscriptionSpan("sub_2", start))
        assert caught.value.code == "active_subscription_exists"
        assert "sub_1" in caught.value.message
        assert "2026-11-10T00:00:00Z" in caught.value.message
    # Spans are half-open: the next may start the instant the last one ends.
    after = ended.with_subscription(SubscriptionSpan("sub_2", NOV_10))
    assert [span.id for span in after.subscriptions] == ["sub_1", "sub_2"]
    # One ending before the running one starts is fine too.
    before = ended.with_subscription(SubscriptionSpan("sub_0", at("2026-10-01T00:00:00Z"), NOVEMBER_NY))
    assert [span.id for span in before.subscriptions] == ["sub_1", "sub_0"]


def test_a_running_subscription_refuses_any_later_one() -> None:
    running = subscribed(profile(), SubscriptionSpan("sub_1", NOVEMBER_NY))

    with pytest.raises(Conflict) as caught:
        running.with_subscription(SubscriptionSpan("sub_2", at("2030-01-01T00:00:00Z")))
    assert "runs on" in caught.value.message


def test_ending_a_subscription_changes_only_its_span_and_never_before_its_start() -> None:
    who = subscribed(
        profile(), SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_10), SubscriptionSpan("sub_2", NOV_20)
    )

    ended = who.with_subscription_end("sub_2", DEC_1_NY)
    assert ended.subscriptions == (
        SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_10),
        SubscriptionSpan("sub_2", NOV_20, DEC_1_NY),
    )
    # Cancelled the instant it started: a zero-length span, which covers and overlaps nothing.
    empty = who.with_subscription_end("sub_2", NOV_20 - timedelta(days=1)).subscriptions[1]
    assert empty == SubscriptionSpan("sub_2", NOV_20, NOV_20)
    assert not empty.covers(NOV_20)
    assert not empty.overlaps(NOVEMBER_NY, None)
    assert not empty.overlaps(NOV_20, DEC_1_NY)
    assert who.with_subscription_end("nope", DEC_1_NY) == who


def test_a_subscription_cancelled_the_instant_it_started_never_ran_so_it_blocks_nothing() -> None:
    never_ran = subscribed(profile(), SubscriptionSpan("sub_1", DEC_1_NY)).with_subscription_end(
        "sub_1", DEC_1_NY
    )

    for start in (NOVEMBER_NY, DEC_1_NY - SECOND, DEC_1_NY):
        renewed = never_ran.with_subscription(SubscriptionSpan("sub_2", start))
        assert [span.id for span in renewed.subscriptions] == ["sub_1", "sub_2"]
    assert never_ran.subscription_in(NOVEMBER_NY, at("2027-01-01T05:00:00Z"), DEC_1_NY) is None


def test_a_subscription_that_never_ran_is_not_the_one_billed_for_a_period() -> None:
    who = subscribed(
        profile(), SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_10), SubscriptionSpan("sub_2", NOV_20)
    )
    who = who.with_subscription_end("sub_2", NOV_20)

    span = who.subscription_in(NOVEMBER_NY, DEC_1_NY, at("2026-11-25T00:00:00Z"))

    assert span is not None
    assert span.id == "sub_1"


def test_subscription_at_is_the_span_covering_the_instant_with_half_open_bounds() -> None:
    who = subscribed(
        profile(), SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_10), SubscriptionSpan("sub_2", NOV_10)
    )
    ids = {
        NOVEMBER_NY - MICROSECOND: None,
        NOVEMBER_NY: "sub_1",
        NOV_10 - MICROSECOND: "sub_1",
        NOV_10: "sub_2",  # the boundary belongs to the one that starts there
        datetime(9999, 1, 1, tzinfo=UTC): "sub_2",
    }

    for instant, expected in ids.items():
        span = who.subscription_at(instant)
        assert (None if span is None else span.id) == expected, instant
    # Offsets do not matter, only the instant.
    assert (
        who.subscription_at(datetime(2026, 11, 1, 0, 0, tzinfo=timezone(-timedelta(hours=4)))).id == "sub_1"
    )


@pytest.mark.parametrize(
    ("spans", "at_", "expected"),
    [
        # running at `at` wins
        ([("sub_1", NOVEMBER_NY, NOV_10), ("sub_2", NOV_20, None)], at("2026-11-05T00:00:00Z"), "sub_1"),
        ([("sub_1", NOVEMBER_NY, NOV_10), ("sub_2", NOV_20, None)], NOV_20, "sub_2"),
        # between two: the later of those that ran during the period
        ([("sub_1", NOVEMBER_NY, NOV_10), ("sub_2", NOV_20, None)], at("2026-11-15T00:00:00Z"), "sub_2"),
        ([("sub_1", NOVEMBER_NY, NOV_10), ("sub_2", NOV_20, DEC_1_NY)], DEC_1_NY, "sub_2"),
        # after the last ended within the period
        ([("sub_1", NOVEMBER_NY, NOV_10)], at("2026-11-15T00:00:00Z"), "sub_1"),
        # a span ending exactly at the period's start, or starting at its end, did not run in it
        ([("sub_0", at("2026-10-01T04:00:00Z"), NOVEMBER_NY)], NOV_10, None),
        ([("sub_3", DEC_1_NY, None)], NOV_10, None),
        ([], NOV_10, None),
    ],
)
def test_subscription_in_a_period_is_the_one_running_at_the_instant_else_the_last_that_ran(
    spans: list[tuple[str, datetime, datetime | None]], at_: datetime, expected: str | None
) -> None:
    who = subscribed(profile(), *(SubscriptionSpan(*span) for span in spans))

    span = who.subscription_in(NOVEMBER_NY, DEC_1_NY, at_)

    assert (None if span is None else span.id) == expected


# ---- customers: stored records ------------------------------------------------------------------------


def test_a_stored_customer_reads_back_equal_and_shows_the_same() -> None:
    ada = patch_customer(profile(), {"tax": CA, "tax_effective_at": "2026-11-15T17:00:00.25Z"}, NOW)
    ada = subscribed(ada, SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_10), SubscriptionSpan("sub_2", NOV_20))

    record = records.customer_record(ada)
    again = records.customer_from_record(json.loads(json.dumps(record)), 7)

    assert "tax" not in record  # the location in effect depends on when one asks
    assert record == {key: value for key, value in shown(ada, NOW).items() if key != "tax"}
    assert again == replace(ada, revision=7)
    assert shown(again, NOW) == shown(ada, NOW)
    assert records.customer_record(again) == record


# A strategy for valid customer profiles, as a client could build them through the API.
NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("C", "Z")), min_size=1, max_size=40)
EMAILS = st.from_regex(r"\A[a-z0-9._+]{1,20}@[a-z0-9-]{1,20}\.[a-z]{2,6}\Z")
INSTANTS = st.integers(min_value=0, max_value=10**14).map(lambda us: CREATED + timedelta(microseconds=us))
TAX_BODIES = st.fixed_dictionaries(
    {"country": st.from_regex(r"\A[A-Z]{2}\Z")},
    optional={
        "region": st.none() | st.from_regex(r"\A[A-Z0-9]{1,3}\Z"),
        "postal_code": st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9 \-]{0,15}\Z"),
        "tax_id": st.none() | st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9 .\-/]{0,63}\Z"),
        "exempt": st.booleans(),
    },
)


@st.composite
def profiles(draw: st.DrawFn) -> CustomerProfile:
    body: dict[str, Any] = {
        "id": draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,20}\Z")),
        "currency": draw(st.sampled_from(["USD", "EUR", "JPY", "BHD"])),
        "timezone": draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"])),
        "billing_anchor_day": draw(st.integers(min_value=1, max_value=28)),
        "name": draw(st.none() | NAMES.filter(lambda name: name == name.strip())),
        "email": draw(st.none() | EMAILS),
        "tax": draw(st.none() | TAX_BODIES),
        "payment_method": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "token": st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.:\-]{2,40}\Z"),
                    "gateway": st.from_regex(r"\A[a-z0-9][a-z0-9_\-]{0,10}\Z"),
                }
            )
        ),
    }
    who = new_customer(body, draw(INSTANTS))
    for effective in sorted(set(draw(st.lists(INSTANTS, max_size=4)))):
        who = patch_customer(
            who, {"tax": draw(TAX_BODIES), "tax_effective_at": format_instant(effective)}, NOW
        )
    boundaries = sorted(set(draw(st.lists(INSTANTS, max_size=6))))
    for n, (start, end) in enumerate(zip(boundaries[::2], boundaries[1::2], strict=False)):
        who = who.with_subscription(SubscriptionSpan(f"sub_{n}", start, end))
    if len(boundaries) % 2:
        who = who.with_subscription(SubscriptionSpan("sub_last", boundaries[-1]))
    return replace(who, revision=draw(st.integers(min_value=0, max_value=10**9)))


@settings(max_examples=120)
@given(who=profiles(), asked=INSTANTS)
def test_any_profile_survives_a_round_trip_through_its_stored_record(
    who: CustomerProfile, asked: datetime
) -> None:
    record = json.loads(json.dumps(records.customer_record(who)))

    again = records.customer_from_record(record, who.revision)

    assert again == who
    assert records.customer_record(again) == record
    assert shown(again, asked) == shown(who, asked)
    assert shown(who, asked)["tax"] == (None if who.tax_at(asked) is None else tax_json(who.tax_at(asked)))


@given(location=TAX_BODIES)
def test_a_tax_location_reads_back_from_its_json(location: dict[str, Any]) -> None:
    read = TaxLocation.from_json(location)

    assert TaxLocation.from_json(tax_json(read)) == read
    assert tax_json(read) == {
        "region": None,
        "postal_code": None,
        "tax_id": None,
        "exempt": False,
        **location,
    }


# ---- card numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"payment_method": {"token": CARD, "gateway": "sandbox"}}, "payment_method.token"),
        ({"payment_method": {"token": "tok_4111-1111-1111-1111", "gateway": "sandbox"}},
         "payment_method.token"),
        ({"name": "Ada 5555 5555 5555 4444"}, "name"),
        ({"tax": {"country": "US", "tax_id": "378282246310005"}}, "tax.tax_id"),  # Amex, 15 digits
        ({"billing_anchor_day": int(CARD)}, "billing_anchor_day"),
        ({"filters": {"amount": Decimal(CARD)}}, "filters.amount"),
        ({"charges": [{"meter": "m"}, {"tiers": [{"up_to": 1}, {"note": f"pay with {CARD}"}]}]},
         "charges[1].tiers[1].note"),
        ({CARD: "x"}, "(request)"),  # in a key: where it was, never the key itself
        ({"meta": {f"card {CARD}": 1}}, "meta"),
        ({"events": [[{"id": "e1"}, CARD]]}, "events[0][1]"),
        ([CARD], "[0]"),
        (CARD, "(request)"),
        (Decimal(CARD), "(request)"),
    ],
)  # fmt: skip
def test_a_card_number_anywhere_in_a_request_is_rejected_naming_where_never_what(
    body: Any, where: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        reject_card_numbers(body)

    assert not isinstance(caught.value, InvalidCatalog)
    assert (caught.value.code, caught.value.details) == ("card_number_rejected", [{"field": where}])
    for digits in ("4111", "5555", "3782"):
        assert digits not in caught.value.message
    assert "payment token" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [
        customer(),
        API_PLAN,
        {"name": "4111111111111112"},  # Luhn-invalid
        {"id": "order-4242-4242"},  # too short
        {"quantity": 123456789012},  # 12 digits
        {"flag": True, "none": None, "price": "0.00002", "at": "2026-03-01T00:00:00Z"},
        {"ratio": Decimal("4111111111111111.5")},
        {"id": "evt_0b6f2c8e-3c1a-4d7e-9b1f-6a2d8e4c1f00"},
        {},
        [],
    ],
)
def test_requests_without_a_card_number_pass(body: Any) -> None:
    reject_card_numbers(body)


def test_the_deepest_body_is_scanned_without_overflowing_the_stack() -> None:
    body: Any = CARD
    for _ in range(100_000):
        body = {"a": [body]}

    with pytest.raises(InvalidRequest) as caught:
        reject_card_numbers(body)
    assert caught.value.code == "card_number_rejected"
    clean: Any = "ok"
    for _ in range(100_000):
        clean = [clean]
    reject_card_numbers(clean)


CLEAN = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text("abc xyz_-.", max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abcdef", max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
CARDS = st.sampled_from(
    [CARD, "5555 5555 5555 4444", "3782-822463-10005", int(CARD), Decimal("6011111111111117")]
)


@settings(max_examples=150)
@given(
    card=CARDS,
    steps=st.lists(st.one_of(st.text("abcdef", min_size=1, max_size=4), st.integers(0, 3)), max_size=6),
    filler=CLEAN,
)
def test_a_card_number_is_found_at_any_depth_and_its_place_is_named(
    card: Any, steps: list[str | int], filler: Any
) -> None:
    """Wrap a card number in any nesting of objects and lists beside clean data; the error names its path."""
    reject_card_numbers(filler)
    body: Any = card
    for step in reversed(steps):
        body = {"zz_other": filler, step: body} if isinstance(step, str) else [*[filler] * step, body, filler]
    path = ""
    for step in steps:
        path = f"{path}[{step}]" if isinstance(step, int) else (f"{path}.{step}" if path else step)

    with pytest.raises(InvalidRequest) as caught:
        reject_card_numbers(body)
    assert caught.value.code == "card_number_rejected"
    assert caught.value.details == [{"field": path or "(request)"}]


# ---- plans: prices as strings ---------------------------------------------------------------------------


def api_plan(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(API_PLAN), **changes}


def with_charge(index: int, **changes: Any) -> dict[str, Any]:
    body = api_plan()
    body["charges"][index].update(changes)
    return body


def with_tier(index: int, position: int, **changes: Any) -> dict[str, Any]:
    body = api_plan()
    body["charges"][index]["tiers"][position].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (api_plan(base_fee=49), "base_fee"),
        (api_plan(base_fee=49.0), "base_fee"),
        (api_plan(base_fee=Decimal("49.00")), "base_fee"),
        (api_plan(base_fee=True), "base_fee"),
        (api_plan(minimum_commitment=100), "minimum_commitment"),
        (with_charge(1, unit_price=0.001), "charges[1].unit_price"),
        (with_charge(3, package_price=5), "charges[3].package_price"),
        (with_tier(2, 0, unit_price=8), "charges[2].tiers[0].unit_price"),
        (with_tier(0, 1, flat_fee=0), "charges[0].tiers[1].flat_fee"),
        (with_tier(0, 1, unit_price=["0.00002"]), "charges[0].tiers[1].unit_price"),
    ],
)
def test_prices_in_a_plan_must_be_decimal_strings(body: dict[str, Any], field: str) -> None:
    assert refused(require_price_strings, body) == ("invalid_amount", field)


@pytest.mark.parametrize(
    "body",
    [
        API_PLAN,
        api_plan(minimum_commitment=None, charges=[]),
        api_plan(charges="all of them"),  # the shape is Plan.from_json's to refuse
        api_plan(charges=[7, {"tiers": "none"}, {"tiers": [3]}]),
        with_charge(2, package_size=100),  # not a price: a number is fine
        with_tier(2, 0, up_to=10),
        "not a plan",
        None,
    ],
)
def test_bodies_whose_prices_are_strings_or_absent_pass(body: Any) -> None:
    require_price_strings(body)


# ---- ids, timestamps, fields, numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("sub_1", True),
        ("a", True),
        ("9", True),
        ("A-b_c.d:e", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("-a", True),  # printable ASCII, whatever it starts with
        (".a", True),
        ("a b", False),
        ("a/b", False),
        ("a#b", False),
        ("ada@example.com", False),
        ("café", False),
        ("sub_1\n", False),
        (" sub_1", False),
        (1, False),
        (None, False),
    ],
)
def test_catalog_ids_are_plain_ascii_of_1_to_128_characters(value: Any, ok: bool) -> None:
    if ok:
        assert catalog_id(value, "plan_id", code="invalid_subscription") == value
    else:
        assert refused(lambda: catalog_id(value, "plan_id", code="invalid_subscription")) == (
            "invalid_subscription",
            "plan_id",
        )


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01t00:00:00z", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T00:00:00+00:00", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-02-28T19:00:00-05:00", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T05:30:00+05:30", datetime(2026, 3, 1, tzinfo=UTC)),
        ("2026-03-01T00:00:00.5Z", datetime(2026, 3, 1, 0, 0, 0, 500_000, tzinfo=UTC)),
        ("2026-03-01T00:00:00.000001Z", datetime(2026, 3, 1, 0, 0, 0, 1, tzinfo=UTC)),
        ("2026-03-01T00:00:00.123456789Z", datetime(2026, 3, 1, 0, 0, 0, 123_456, tzinfo=UTC)),  # truncated
        ("2026-03-01T00:00:00.999999999+01:00", datetime(2026, 2, 28, 23, 0, 0, 999_999, tzinfo=UTC)),
        ("2028-02-29T12:00:00Z", datetime(2028, 2, 29, 12, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_instants_are_rfc_3339_with_an_offset_read_as_utc(text: str, instant: datetime) -> None:
    parsed = parse_instant(text, "start")

    assert parsed == instant
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01",
        "2026-03-01T00:00:00",  # no offset: which zone?
        "2026-03-01 00:00:00Z",
        "2026-03-01T00:00Z",
        "2026-3-1T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T23:59:60Z",
        "2026-03-01T00:00:00+24:00",
        "2026-03-01T00:00:00+0100",
        "2026-03-01T00:00:00.Z",
        "2026-03-01T00:00:00.1234567890Z",
        "2026-03-01T00:00:00Z\n",
        " 2026-03-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before the first representable instant once in UTC
        "9999-12-31T23:59:59-01:00",  # after the last
        "yesterday",
        "",
        None,
        1_772_323_200,
        datetime(2026, 3, 1),  # naive: which zone?
    ],
)
def test_anything_else_is_an_invalid_timestamp_naming_the_field(value: Any) -> None:
    assert refused(parse_instant, value, "effective_at") == ("invalid_timestamp", "effective_at")


OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)


@given(instant=st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=OFFSETS))
def test_any_instant_reads_back_from_its_rfc_3339_text(instant: datetime) -> None:
    assert parse_instant(format_instant(instant), "at") == instant
    assert parse_instant(instant.isoformat(), "at") == instant


def test_unknown_fields_are_named_first_in_order_and_the_allowed_ones_listed() -> None:
    with pytest.raises(InvalidCatalog) as caught:
        reject_unknown_fields(
            {"plan_id": "pro", "trial": 14, "coupon": "x"}, ("plan_id", "at"), "plan change", "c"
        )

    assert (caught.value.code, caught.value.field) == ("c", "coupon")
    assert "coupon, trial" in caught.value.message
    assert "allowed: at, plan_id" in caught.value.message
    reject_unknown_fields({"plan_id": "pro"}, ("plan_id", "at"), "plan change", "c")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal(5), 5),
        (Decimal("5.000"), 5),
        (Decimal("-3"), -3),
        (Decimal("1E+15"), 10**15),
        (Decimal("0.1"), 0.1),
        (Decimal("1.10"), 1.1),
        (Decimal("0.00002"), 0.00002),
        (Decimal("1E+20"), 1e20),
        (Decimal("123456789012345678"), "123456789012345678"),
        (Decimal("0.12345678901234567"), "0.12345678901234567"),
        ("eu", "eu"),
        (7, 7),
        (True, True),
    ],
)
def test_json_number_keeps_stored_numbers_exact(value: Any, shown: Any) -> None:
    result = json_number(value)

    assert (result, type(result)) == (shown, type(shown))


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_any_decimal_is_shown_as_json_that_reads_back_as_the_same_number(value: Decimal) -> None:
    shown = json_number(value)

    assert isinstance(shown, int | float | str)
    assert Decimal(json.dumps(shown).strip('"')) == value


# ---- meters and plans as stored -------------------------------------------------------------------------


def test_stored_meters_and_plans_are_shown_with_their_creation_time() -> None:
    meter = Meter("tokens", "api.call", Aggregation.SUM, "tokens", {"region": "eu", "tier": Decimal("2")})
    pro = plan(version=3)

    assert MeterOut.of(MeterRecord(meter, CREATED)).model_dump(mode="json") == {
        "key": "tokens",
        "event_type": "api.call",
        "aggregation": "sum",
        "value_property": "tokens",
        "filters": {"region": "eu", "tier": 2},
        "created_at": "2026-11-01T09:00:00Z",
    }
    shown_plan = PlanOut.of(PlanRecord(pro, CREATED)).model_dump(mode="json")
    assert shown_plan == {**pro.to_json(), "created_at": "2026-11-01T09:00:00Z"}
    assert (shown_plan["id"], shown_plan["version"], shown_plan["base_fee"]) == ("pro", 3, "49.00")
    assert Plan.from_json({k: v for k, v in shown_plan.items() if k != "created_at"}) == pro


# ---- subscriptions --------------------------------------------------------------------------------------

PLANS = {version: plan(version=version, base_fee=f"{40 + version}.00") for version in range(1, 7)}
ENTERPRISE = plan(id="enterprise", base_fee="99.00", charges=[], minimum_commitment=None)
EURO = plan(id="euro", currency="EUR", charges=[])


def plan_of(plan_id: str, version: int) -> Plan:
    return {"pro": PLANS, "enterprise": {1: ENTERPRISE}, "euro": {1: EURO}}[plan_id][version]


def started(start: datetime = NOVEMBER_NY, first: Plan = PLANS[1]) -> SubscriptionRecord:
    """A subscription as the catalog creates it: one segment on `first` from `start`."""
    return SubscriptionRecord(
        id="sub_1",
        customer_id="cus_42",
        start=start,
        segments=(SegmentRecord(first.id, first.version, start),),
        created_at=CREATED,
        updated_at=CREATED,
    )


def change(record: SubscriptionRecord, to: Plan, when: datetime) -> SubscriptionRecord:
    return record.with_segments(record.to_domain(plan_of).change_plan(to, when), NOW)


def cancel(record: SubscriptionRecord, when: datetime) -> SubscriptionRecord:
    return record.with_segments(record.to_domain(plan_of).cancel(when), NOW)


def segments(record: SubscriptionRecord) -> list[tuple[str, int, datetime, datetime | None]]:
    return [(s.plan_id, s.plan_version, s.start, s.end) for s in record.segments]


def test_a_new_subscription_is_active_on_its_plan_from_its_start() -> None:
    record = started()

    assert subscription_shown(record) == {
        "id": "sub_1",
        "customer_id": "cus_42",
        "plan_id": "pro",
        "plan_version": 1,
        "status": "active",
        "start": "2026-11-01T04:00:00Z",
        "end": None,
        "segments": [{"plan_id": "pro", "plan_version": 1, "start": "2026-11-01T04:00:00Z", "end": None}],
        "created_at": "2026-11-01T09:00:00Z",
        "updated_at": "2026-11-01T09:00:00Z",
    }
    assert (record.status, record.end, record.span) == (
        "active",
        None,
        SubscriptionSpan("sub_1", NOVEMBER_NY),
    )
    assert record.to_domain(plan_of) == Subscription.start("sub_1", "cus_42", PLANS[1], NOVEMBER_NY)


def test_a_plan_change_ends_the_old_segment_where_the_new_one_starts() -> None:
    changed = change(started(), ENTERPRISE, NOV_10)

    assert segments(changed) == [("pro", 1, NOVEMBER_NY, NOV_10), ("enterprise", 1, NOV_10, None)]
    api = subscription_shown(changed)
    assert (api["plan_id"], api["plan_version"], api["status"], api["end"]) == (
        "enterprise",
        1,
        "active",
        None,
    )
    assert (changed.start, changed.created_at, changed.updated_at) == (NOVEMBER_NY, CREATED, NOW)


def test_a_plan_change_at_the_first_instant_replaces_the_plan_and_one_second_later_splits_it() -> None:
    at_start = change(started(), PLANS[2], NOVEMBER_NY)
    a_second_in = change(started(), PLANS[2], NOVEMBER_NY + SECOND)

    assert segments(at_start) == [("pro", 2, NOVEMBER_NY, None)]  # a zero-length segment bills nothing
    assert at_start.start == NOVEMBER_NY
    assert segments(a_second_in) == [
        ("pro", 1, NOVEMBER_NY, NOVEMBER_NY + SECOND),
        ("pro", 2, NOVEMBER_NY + SECOND, None),
    ]


def test_a_plan_change_in_the_last_second_of_a_period_and_at_its_end() -> None:
    last_second = change(started(), PLANS[2], DEC_1_NY - SECOND)
    at_end = change(last_second, PLANS[3], DEC_1_NY)

    assert segments(at_end) == [
        ("pro", 1, NOVEMBER_NY, DEC_1_NY - SECOND),
        ("pro", 2, DEC_1_NY - SECOND, DEC_1_NY),
        ("pro", 3, DEC_1_NY, None),
    ]
    # Changing again at the instant the current plan started replaces only that one.
    again = change(at_end, PLANS[4], DEC_1_NY)
    assert segments(again)[-1] == ("pro", 4, DEC_1_NY, None)
    assert len(again.segments) == 3


def test_cancelling_ends_the_last_segment_and_the_subscription() -> None:
    cancelled = cancel(change(started(), ENTERPRISE, NOV_10), NOV_20)

    assert segments(cancelled) == [("pro", 1, NOVEMBER_NY, NOV_10), ("enterprise", 1, NOV_10, NOV_20)]
    assert (cancelled.status, cancelled.end, cancelled.span) == (
        "cancelled",
        NOV_20,
        SubscriptionSpan("sub_1", NOVEMBER_NY, NOV_20),
    )
    api = subscription_shown(cancelled)
    assert (api["plan_id"], api["status"], api["end"]) == ("enterprise", "cancelled", "2026-11-20T00:00:00Z")


def test_cancelling_the_instant_a_plan_started_drops_that_segment() -> None:
    at_start = cancel(started(), NOVEMBER_NY)
    at_change = cancel(change(started(), ENTERPRISE, NOV_10), NOV_10)

    assert (at_start.segments, at_start.status, at_start.end) == ((), "cancelled", NOVEMBER_NY)
    assert at_start.span == SubscriptionSpan("sub_1", NOVEMBER_NY, NOVEMBER_NY)
    assert (subscription_shown(at_start)["plan_id"], subscription_shown(at_start)["plan_version"]) == (
        None,
        None,
    )
    assert segments(at_change) == [("pro", 1, NOVEMBER_NY, NOV_10)]
    assert (at_change.status, at_change.end) == ("cancelled", NOV_10)


@pytest.mark.parametrize(
    ("act", "field"),
    [
        (lambda r: change(r, PLANS[2], NOVEMBER_NY - MICROSECOND), "effective_at"),
        (lambda r: cancel(r, NOVEMBER_NY - MICROSECOND), "effective_at"),
        (lambda r: change(change(r, PLANS[2], NOV_10), PLANS[3], NOV_10 - SECOND), "effective_at"),
        (lambda r: change(r, EURO, NOV_10), "plan_id"),
        (lambda r: change(cancel(r, NOV_20), PLANS[2], DEC_1_NY), None),
        (lambda r: cancel(cancel(r, NOV_20), DEC_1_NY), None),
    ],
)
def test_changes_before_the_current_plan_started_in_another_currency_or_after_cancelling_are_refused(
    act: Callable[[SubscriptionRecord], Any], field: str | None
) -> None:
    assert refused(act, started()) == ("invalid_subscription", field)


@pytest.mark.parametrize(
    "record",
    [
        started(),
        change(started(), ENTERPRISE, at("2026-11-16T05:00:00.123456Z")),
        cancel(change(started(), PLANS[2], NOV_10), NOV_20),
        cancel(started(), NOVEMBER_NY),
    ],
)
def test_a_stored_subscription_reads_back_equal(record: SubscriptionRecord) -> None:
    stored = json.loads(json.dumps(records.subscription_record(record)))

    again = records.subscription_from_record(stored, 4)

    assert again == replace(record, revision=4)
    assert subscription_shown(again) == subscription_shown(record)
    assert records.subscription_record(again) == stored  # the record is its own format, not the API's
    assert again.to_domain(plan_of) == record.to_domain(plan_of)


def test_a_stored_record_in_any_offset_reads_back_as_the_same_instants() -> None:
    stored = records.subscription_record(started())
    stored = {**stored, "start": "2026-11-01T00:00:00-04:00", "created_at": "2026-11-01T10:00:00+01:00"}
    stored["segments"] = [{**stored["segments"][0], "start": "2026-11-01T00:00:00-04:00"}]

    assert records.subscription_from_record(stored, 0) == started()


@st.composite
def histories(draw: st.DrawFn) -> tuple[SubscriptionRecord, list[tuple[datetime, Plan]], datetime | None]:
    """A subscription after any sequence of valid plan changes (some at the same instant), maybe cancelled."""
    record = started(first=PLANS[1])
    changes: list[tuple[datetime, Plan]] = [(NOVEMBER_NY, PLANS[1])]
    when = NOVEMBER_NY
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        when += timedelta(
            microseconds=draw(st.sampled_from([0, 1, 10**6]) | st.integers(0, 40 * 86400 * 10**6))
        )
        to = draw(st.sampled_from([*PLANS.values(), ENTERPRISE]))
        record = change(record, to, when)
        changes.append((when, to))
    end = None
    if draw(st.booleans()):
        end = when + timedelta(microseconds=draw(st.sampled_from([0, 1]) | st.integers(0, 10**12)))
        record = cancel(record, end)
    return record, changes, end


@settings(max_examples=150)
@given(history=histories(), probes=st.lists(st.integers(min_value=-(10**12), max_value=10**14), max_size=8))
def test_segments_tile_the_subscription_and_each_instant_is_on_the_last_plan_chosen_before_it(
    history: tuple[SubscriptionRecord, list[tuple[datetime, Plan]], datetime | None], probes: list[int]
) -> None:
    record, changes, end = history

    # No gap, no overlap, no empty segment: [start, end) is cut into consecutive non-empty pieces.
    assert record.end == end
    assert record.status == ("active" if end is None else "cancelled")
    if record.segments:
        assert record.segments[0].start == record.start
        assert record.segments[-1].end == end
    else:
        assert end == record.start
    for earlier, later in zip(record.segments, record.segments[1:], strict=False):
        assert earlier.end == later.start
    for segment in record.segments:
        assert segment.end is None or segment.start < segment.end
    # Each instant of the span is on exactly one segment: the plan of the last change at or before it.
    for probe in [0, *probes, *((when - NOVEMBER_NY) // MICROSECOND for when, _ in changes)]:
        instant = NOVEMBER_NY + timedelta(microseconds=probe)
        covering = [s for s in record.segments if s.start <= instant and (s.end is None or instant < s.end)]
        if instant < record.start or (end is not None and instant >= end):
            assert covering == []
            assert not record.span.covers(instant)
        else:
            chosen = [to for when, to in changes if when <= instant][-1]
            assert [(s.plan_id, s.plan_version) for s in covering] == [(chosen.id, chosen.version)]
            assert record.span.covers(instant)
    # And the stored record reads back as it was.
    assert (
        records.subscription_from_record(
            json.loads(json.dumps(records.subscription_record(record))), record.revision
        )
        == record
    )


def test_catalog_errors_are_billing_errors_a_handler_maps_in_one_place() -> None:
    with pytest.raises(BillingError):
        parse_instant("0001-01-01T00:00:00+01:00", "start")
    with pytest.raises(BillingError):
        profile().with_subscription(SubscriptionSpan("s", NOVEMBER_NY)).with_subscription(
            SubscriptionSpan("t", NOVEMBER_NY)
        )
