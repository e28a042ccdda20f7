"""Money: ISO 4217 currencies, integer minor units, strict decimal parsing and the one rounding rule.

Amounts that are billed are integers in the currency's minor unit. Unit prices, quantities and
unrounded amounts are `Decimal` (sub-cent unit prices are normal in usage billing). A float never
enters: it cannot hold 0.1 exactly.

The rounding rule, applied exactly once per invoice line (`to_minor`): ROUND_HALF_EVEN to the
currency's minor unit ("banker's rounding": a tie goes to the even neighbour, so 0.125 USD -> 0.12 and
0.135 USD -> 0.14). Over many lines it has no upward or downward bias, and it is the IEEE 754 default.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType
from typing import Any

from billing.domain.numbers import MAX_ADJUSTED_EXPONENT, MAX_DIGITS, MIN_ADJUSTED_EXPONENT
from billing.domain.rating.errors import InvalidCatalog, RatingFailed

ROUNDING = ROUND_HALF_EVEN

# ISO 4217 minor-unit exponents (digits after the decimal point).
ISO_4217_EXPONENTS: Mapping[str, int] = MappingProxyType(
    {
        # two decimals
        "AED": 2, "ARS": 2, "AUD": 2, "BGN": 2, "BRL": 2, "CAD": 2, "CHF": 2, "CNY": 2, "COP": 2,
        "CZK": 2, "DKK": 2, "EGP": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2,
        "INR": 2, "KES": 2, "MAD": 2, "MXN": 2, "MYR": 2, "NGN": 2, "NOK": 2, "NZD": 2, "PEN": 2,
        "PHP": 2, "PKR": 2, "PLN": 2, "RON": 2, "RSD": 2, "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2,
        "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2, "ZAR": 2,
        # no minor unit
        "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
        "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
        # three decimals
        "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
        # four decimals (unit of account)
        "CLF": 4, "UYW": 4,
    }
)  # fmt: skip


# Rating arithmetic must be exact. Inputs have at most 38 significant digits within 1E-130..1E+125, so
# sums and products of them fit in 400 digits; Inexact is trapped so that a silent rounding anywhere
# but `to_minor` would be an error, not a wrong invoice.
EXACT = Context(
    prec=400,
    rounding=ROUND_HALF_EVEN,
    Emax=999_999,
    Emin=-999_999,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
)


@contextmanager
def exact_arithmetic() -> Iterator[None]:
    """Run Decimal arithmetic in the exact context; an inexact result raises RatingFailed."""
    with localcontext(EXACT):
        try:
            yield
        except Inexact:
            raise RatingFailed(
                "an amount has more digits than can be computed exactly", code="unrepresentable_amount"
            ) from None


@dataclass(frozen=True)
class Currency:
    """An ISO 4217 currency and the number of digits of its minor unit."""

    code: str
    exponent: int

    @classmethod
    def of(cls, code: object) -> Currency:
        if isinstance(code, Currency):
            return code
        if not isinstance(code, str) or code not in ISO_4217_EXPONENTS:
            raise InvalidCatalog(
                f"unknown currency {code!r}: expected an ISO 4217 code in upper case, e.g. USD, EUR, JPY",
                code="unknown_currency",
                field="currency",
            )
        return cls(code, ISO_4217_EXPONENTS[code])

    @property
    def minor_unit(self) -> Decimal:
        """The value of one minor unit in major units (0.01 for USD, 1 for JPY, 0.001 for KWD)."""
        return Decimal(1).scaleb(-self.exponent)

    def __str__(self) -> str:
        return self.code


def to_minor(amount: Decimal, currency: Currency) -> int:
    """Round an amount in major units to integer minor units, ROUND_HALF_EVEN (the only rounding)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise RatingFailed(f"cannot round {amount!r}: not a finite Decimal", code="unrepresentable_amount")
    with exact_arithmetic():
        # to_integral_value never signals Inexact: this is the one place where rounding is intended.
        return int(amount.scaleb(currency.exponent).to_integral_value(rounding=ROUNDING))


def format_major(minor: int, currency: Currency) -> str:
    """Minor units as a decimal string in major units: 1234 -> "12.34" USD, "1234" JPY, "1.234" KWD."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError("minor units are an int")
    sign = "-" if minor < 0 else ""
    if currency.exponent == 0:
        return f"{sign}{abs(minor)}"
    whole, fraction = divmod(abs(minor), 10**currency.exponent)
    return f"{sign}{whole}.{fraction:0{currency.exponent}d}"


@dataclass(frozen=True)
class Money:
    """An amount in integer minor units of one currency. Adding different currencies is refused."""

    minor: int
    currency: Currency

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise TypeError("Money.minor is an int (minor units)")

    @classmethod
    def zero(cls, currency: Currency) -> Money:
        return cls(0, currency)

    @classmethod
    def round(cls, amount: Decimal, currency: Currency) -> Money:
        """The one rounding step of a line: an unrounded Decimal amount to Money (half-even)."""
        return cls(to_minor(amount, currency), currency)

    @property
    def major(self) -> str:
        return format_major(self.minor, self.currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor).scaleb(-self.currency.exponent)

    def _same_currency(self, other: Money) -> None:
        if self.currency != other.currency:
            raise RatingFailed(
                f"cannot combine {self.currency} and {other.currency} amounts", code="currency_mismatch"
            )

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)


_DECIMAL_TEXT = re.compile(r"^[+-]?\d+(\.\d+)?$")


def parse_decimal(
    value: Any, *, field: str, allow_negative: bool = False, allow_zero: bool = True
) -> Decimal:
    """A price or quantity from client input, strictly.

    Accepted: a decimal string ("0.00002", "-1.5" when negative is allowed; no exponent, no spaces), an
    int, or a finite Decimal (what an exact JSON parse yields). Refused with InvalidCatalog: floats (they
    cannot hold most decimal fractions), booleans, NaN/Infinity, more than 38 significant digits.
    """
    number: Decimal
    if isinstance(value, bool) or value is None:
        raise _invalid_amount(field, 'must be a decimal string such as "12.50"')
    if isinstance(value, float):
        raise _invalid_amount(field, 'must be a decimal string such as "0.00002", not a float')
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise _invalid_amount(field, "must be a finite number")
        number = value
    elif isinstance(value, str):
        if not _DECIMAL_TEXT.match(value):
            raise _invalid_amount(field, f'{value[:40]!r} is not a decimal number such as "12.50"')
        number = Decimal(value)
    else:
        raise _invalid_amount(field, 'must be a decimal string such as "12.50"')
    if number.is_zero():
        number = number.copy_abs()  # "-0" is zero, not negative
    elif not _storable(number):
        raise _invalid_amount(field, "has more than 38 significant digits or is out of range")
    if number < 0 and not allow_negative:
        raise _invalid_amount(field, "must not be negative")
    if number.is_zero() and not allow_zero:
        raise _invalid_amount(field, "must be greater than zero")
    return number


def decimal_text(number: Decimal) -> str:
    """Canonical fixed-point text of a Decimal: no exponent, no trailing zeros ("1.50" -> "1.5")."""
    if number.is_zero():
        return "0"
    with localcontext(EXACT):
        return format(number.normalize(), "f")


def _storable(number: Decimal) -> bool:
    digits = len(number.as_tuple().digits)
    return digits <= MAX_DIGITS and MIN_ADJUSTED_EXPONENT <= number.adjusted() <= MAX_ADJUSTED_EXPONENT


def _invalid_amount(field: str, problem: str) -> InvalidCatalog:
    return InvalidCatalog(f"{field} {problem}", code="invalid_amount", field=field)
