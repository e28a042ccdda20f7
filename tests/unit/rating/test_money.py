"""Money: currencies, minor units, the half-even rounding rule, strict decimal parsing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.rating.errors import InvalidCatalog, RatingFailed
from billing.domain.rating.money import (
    ISO_4217_EXPONENTS,
    Currency,
    Money,
    decimal_text,
    format_major,
    parse_decimal,
    to_minor,
)

USD = Currency.of("USD")
JPY = Currency.of("JPY")
KWD = Currency.of("KWD")

REQUIRED = frozenset(
    {"USD", "EUR", "GBP", "JPY", "KWD", "BHD", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN",
     "CZK", "HUF", "INR", "BRL", "MXN", "SGD", "HKD", "KRW", "CLP", "ISK", "TND", "OMR", "JOD", "IQD",
     "LYD", "VND", "ZAR", "CNY"}
)  # fmt: skip


@pytest.mark.parametrize(
    ("code", "exponent"),
    [("USD", 2), ("EUR", 2), ("JPY", 0), ("KRW", 0), ("ISK", 0), ("VND", 0), ("CLP", 0), ("KWD", 3),
     ("BHD", 3), ("OMR", 3), ("TND", 3), ("JOD", 3), ("IQD", 3), ("LYD", 3), ("HUF", 2), ("CLF", 4)],
)  # fmt: skip
def test_currencies_carry_their_iso_4217_exponent(code: str, exponent: int) -> None:
    assert Currency.of(code).exponent == exponent


def test_every_currency_the_product_promises_is_known() -> None:
    assert set(ISO_4217_EXPONENTS) >= REQUIRED


@pytest.mark.parametrize("code", ["XYZ", "usd", "US", "", None, 840])
def test_an_unknown_currency_is_refused_with_a_clear_code(code: object) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        Currency.of(code)
    assert caught.value.code == "unknown_currency"
    assert "ISO 4217" in caught.value.message


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("0.125", USD, 12),  # tie -> even neighbour (down)
        ("0.135", USD, 14),  # tie -> even neighbour (up)
        ("0.145", USD, 14),
        ("0.1250001", USD, 13),  # not a tie
        ("-0.125", USD, -12),
        ("-0.135", USD, -14),
        ("24.69134", USD, 2469),  # 0.00002 x 1,234,567 tokens
        ("0.5", JPY, 0),
        ("1.5", JPY, 2),
        ("1234.4", JPY, 1234),
        ("1.2345", KWD, 1234),  # KWD has three decimals; the tie goes to the even 4
        ("1.2355", KWD, 1236),
        ("0", USD, 0),
        ("12", USD, 1200),
    ],
)
def test_to_minor_rounds_half_even_to_the_currency_exponent(
    amount: str, currency: Currency, minor: int
) -> None:
    assert to_minor(Decimal(amount), currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1234, USD, "12.34"), (5, USD, "0.05"), (-5, USD, "-0.05"), (0, USD, "0.00"), (1234, JPY, "1234"),
     (1234, KWD, "1.234"), (7, KWD, "0.007"), (-1234, JPY, "-1234")],
)  # fmt: skip
def test_format_major_writes_exactly_the_currency_digits(minor: int, currency: Currency, text: str) -> None:
    assert format_major(minor, currency) == text


def test_money_adds_and_subtracts_only_within_one_currency() -> None:
    assert Money(150, USD) + Money(25, USD) == Money(175, USD)
    assert Money(150, USD) - Money(200, USD) == Money(-50, USD)
    assert (-Money(3, JPY)).major == "-3"
    with pytest.raises(RatingFailed) as caught:
        Money(1, USD) + Money(1, JPY)
    assert caught.value.code == "currency_mismatch"


def test_money_refuses_non_integer_minor_units() -> None:
    with pytest.raises(TypeError):
        Money(Decimal("1.5"), USD)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, USD)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.00002", Decimal("0.00002")), ("49.00", Decimal("49.00")), ("0", Decimal(0)), (100, Decimal(100)),
     (Decimal("5.00"), Decimal("5.00")), ("-0", Decimal(0))],
)  # fmt: skip
def test_prices_parse_exactly_from_strings_ints_and_decimals(value: object, expected: Decimal) -> None:
    parsed = parse_decimal(value, field="unit_price")
    assert parsed == expected
    assert str(parsed) == str(expected)


@pytest.mark.parametrize(
    "value",
    [0.1, 1.0, True, None, "NaN", "Infinity", "1e5", " 1.5", "1.", ".5", "1,5", "", "abc", Decimal("NaN"),
     "-1.5", "1" * 39, [], {}],
)  # fmt: skip
def test_prices_refuse_floats_specials_negatives_and_sloppy_text(value: object) -> None:
    with pytest.raises(InvalidCatalog) as caught:
        parse_decimal(value, field="unit_price")
    assert caught.value.code == "invalid_amount"
    assert caught.value.field == "unit_price"


def test_a_float_price_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidCatalog, match="not a float"):
        parse_decimal(0.00002, field="unit_price")


def test_negative_and_zero_are_refused_only_when_asked() -> None:
    assert parse_decimal("-1.5", field="amount", allow_negative=True) == Decimal("-1.5")
    with pytest.raises(InvalidCatalog):
        parse_decimal("0", field="package_size", allow_zero=False)


@pytest.mark.parametrize(
    ("number", "text"),
    [("1.50", "1.5"), ("100", "100"), ("1E+3", "1000"), ("0.00002", "0.00002"), ("-0.0", "0"), ("0E-8", "0")],
)
def test_decimal_text_is_fixed_point_and_canonical(number: str, text: str) -> None:
    assert decimal_text(Decimal(number)) == text


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**12), max_value=10**12))
def test_rounding_error_of_a_line_is_at_most_half_a_minor_unit(amount: Decimal) -> None:
    for currency in (USD, JPY, KWD):
        minor = to_minor(amount, currency)
        error = abs(Money(minor, currency).to_decimal() - amount)
        assert error <= currency.minor_unit / 2
