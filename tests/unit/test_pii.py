"""PII stripping (pure): deny-list, value detectors, allow-list, Luhn."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.pii import classify_value, luhn_valid, strip_properties
from billing.domain.tenants import PiiPolicy


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("jane@example.com", "email"),
        ("write to Jane.Doe+x@mail.example.co.uk please", "email"),
        ("+44 20 7946 0958", "phone"),
        ("(212) 555-0100", "phone"),
        ("call +1 212 555 0100 now", "phone"),
        ("192.168.1.20", "ip"),
        ("2001:db8::1", "ip"),
        ("from 10.0.0.7 at noon", "ip"),
        ("4111 1111 1111 1111", "card"),
        ("4111-1111-1111-1111", "card"),
        (4111111111111111, "card"),
        ("card 5500005555555559 used", "card"),
        # Not personal data:
        ("4111 1111 1111 1112", None),  # fails Luhn
        ("2026-03-04", None),
        ("2026-03-04T10:00:00Z", None),
        ("1.2.3", None),
        ("gpt-4.1", None),
        ("eu-west-1", None),
        ("1200", None),
        (1200, None),
        (Decimal("0.00002"), None),
        (True, None),
        (None, None),
    ],
)
def test_value_detectors(value: object, kind: str | None) -> None:
    assert classify_value(value) == kind


def test_deny_list_drops_personal_keys_by_word_and_by_name() -> None:
    properties = {
        "tokens": 1,
        "user_email": "x",
        "clientIp": "x",
        "billingAddress": "x",
        "Phone-Number": "x",
        "name": "Jane",
        "first_name": "Jane",
        "plan_name": "pro",
        "region": "eu",
        "nested": {"email": "x", "ok": 2, "list": ["a", "b@c.de"]},
    }
    kept, report = strip_properties(properties, PiiPolicy())

    assert kept == {"tokens": 1, "plan_name": "pro", "region": "eu", "nested": {"ok": 2, "list": ["a"]}}
    assert report.counts["key_denylist"] == 7
    assert report.counts["email"] == 1
    assert report.total == 8


def test_tenant_deny_list_adds_to_the_built_in_one() -> None:
    kept, report = strip_properties(
        {"tokens": 1, "device_id": "d1", "Device-ID": "d2"}, PiiPolicy(deny=("deviceId",))
    )

    assert kept == {"tokens": 1}
    assert report.counts["key_denylist"] == 2


def test_allow_list_keeps_only_listed_keys_and_still_never_keeps_card_numbers() -> None:
    policy = PiiPolicy(allow=("tokens", "note", "email"))
    kept, report = strip_properties(
        {"tokens": 1, "note": "4111111111111111", "email": "a@b.cd", "region": "eu"}, policy
    )

    # The tenant allowed "email": an allow-list is the tenant's explicit decision; cards never pass.
    assert kept == {"tokens": 1, "email": "a@b.cd"}
    assert report.counts == {"key_allowlist": 1, "card": 1}


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("4111111111111111", True),
        ("5500005555555559", True),
        ("378282246310005", True),
        ("4111111111111112", False),
        ("123", False),
        ("41111111111111111111", False),
        ("41x1111111111111", False),
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=8))
def test_stripping_only_removes_and_is_idempotent(properties: dict) -> None:
    kept, report = strip_properties(properties, PiiPolicy())
    again, second = strip_properties(kept, PiiPolicy())

    assert again == kept
    assert second.total == 0
    assert set(kept) <= set(properties)
    assert report.total >= len(properties) - len(kept)


@given(st.integers(min_value=10**12, max_value=10**19 - 1))
def test_every_luhn_valid_number_is_stripped_under_any_policy(number: int) -> None:
    digits = str(number)
    if not luhn_valid(digits):
        return
    for policy in (PiiPolicy(), PiiPolicy(allow=("v",))):
        kept, _ = strip_properties({"v": digits, "w": number}, policy)
        assert kept == {}


def test_personal_data_in_property_names_is_dropped_too() -> None:
    kept, report = strip_properties({"4111111111111111": True, "jane@example.com": 1, "ok": 2}, PiiPolicy())

    assert kept == {"ok": 2}
    assert report.counts == {"card": 1, "email": 1}


def test_a_card_number_as_a_nested_name_is_dropped_under_an_allow_list() -> None:
    kept, report = strip_properties({"k": {"4111111111111111": 1, "x": 2}}, PiiPolicy(allow=("k",)))

    assert kept == {"k": {"x": 2}}
    assert report.counts["card"] == 1


@pytest.mark.parametrize("number", [Decimal("4111111111111111.0"), Decimal("4.111111111111111E+15")])
def test_a_card_number_written_as_a_decimal_is_still_a_card_number(number: Decimal) -> None:
    assert classify_value(number) == "card"


@pytest.mark.parametrize(
    "number", [Decimal("1E+999999999"), Decimal("-1E+999999999"), Decimal("1E-999999999"), 10**400]
)
def test_huge_numbers_are_not_card_numbers_and_are_judged_at_once(number: Decimal | int) -> None:
    assert classify_value(number) is None
