"""Stripping personal data from event properties before anything is stored.

With an allow-list only the listed top-level properties are kept. Without one, properties whose names
are on the deny-list are dropped, and so are values that look like emails, phone numbers, IP addresses
or card numbers. Card numbers (Luhn-valid digit runs) are dropped under every policy: a card number
never enters the system. The report says how much was dropped, by kind, never what.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing.domain.tenants import PiiPolicy

# Property names dropped when any of their words is one of these ("user_email", "clientIp", "billingAddress").
DENY_WORDS = frozenset(
    {
        "email",
        "phone",
        "mobile",
        "msisdn",
        "ip",
        "ipv4",
        "ipv6",
        "address",
        "ssn",
        "password",
        "passwd",
        "card",
        "cvv",
        "cvc",
        "iban",
        "dob",
        "birthday",
        "birthdate",
        "passport",
    }
)
# Whole property names dropped (as words alone they are too common: "plan_name", "street_level").
DENY_NAMES = frozenset(
    {
        "name",
        "firstname",
        "lastname",
        "fullname",
        "givenname",
        "familyname",
        "surname",
        "username",
        "street",
        "postcode",
        "zipcode",
        "zip",
        "postalcode",
        "creditcard",
        "cardnumber",
        "ccnumber",
        "socialsecuritynumber",
        "taxid",
        "nationalid",
        "dateofbirth",
        "location",
        "geo",
        "latitude",
        "longitude",
        "lat",
        "lng",
        "lon",
    }
)

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Linear time on any input: a local part starts only where one can (the lookbehind) and is taken whole
# (possessive), so a 30 KB run of letters is one attempt, not thirty thousand.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]++"  # the local part, from its first character
    r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
)
_PHONE = re.compile(r"^\+?[\d\s().\-]{7,24}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
# Inside free text only unambiguous shapes count: international phone numbers and dotted IPv4.
_PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+\d[\d\s().\-]{5,20}\d")
_IPV4_IN_TEXT = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_CARD_RUN = re.compile(r"(?<!\d)(?:\d[ \-]?){12,18}\d(?!\d)")


@dataclass(frozen=True)
class StripReport:
    """What was removed, as counts by kind: key_allowlist, key_denylist, email, phone, ip, card."""

    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def strip_properties(properties: dict[str, Any], policy: PiiPolicy) -> tuple[dict[str, Any], StripReport]:
    counts: Counter[str] = Counter()
    if policy.allow is not None:
        allowed = set(policy.allow)
        kept = {key: value for key, value in properties.items() if key in allowed}
        counts["key_allowlist"] += len(properties) - len(kept)
        return _strip(kept, _card_kind, _card_kind, counts), StripReport(counts)
    extra_names = {_normalize(name) for name in policy.deny}

    def judge_key(key: str) -> str | None:
        # A property's name may itself be personal data ({"jane@example.com": 1}).
        return "key_denylist" if _denied_name(key, extra_names) else classify_value(key)

    return _strip(properties, judge_key, classify_value, counts), StripReport(counts)


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def looks_like_card_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | Decimal):
        if isinstance(value, Decimal):
            # Card numbers have 13 to 19 digits: look no further (int() of 1E+999999999 would never end).
            if not value.is_finite() or not 12 <= value.adjusted() <= 18:
                return False
            if value != value.to_integral_value():
                return False
        elif not 10**12 <= abs(value) < 10**19:
            return False
        text = str(int(value))  # 4.111111111111111E+15 is the same number as 4111111111111111
        return text.isdigit() and luhn_valid(text)
    if not isinstance(value, str):
        return False
    return any(luhn_valid(re.sub(r"[ \-]", "", run.group())) for run in _CARD_RUN.finditer(value))


def classify_value(value: Any) -> str | None:
    """The kind of personal data a value looks like, or None."""
    if looks_like_card_number(value):
        return "card"
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _EMAIL.search(text):
        return "email"
    if _is_ip(text) or any(_is_ip(match.group()) for match in _IPV4_IN_TEXT.finditer(text)):
        return "ip"
    if any(_phone_digits(match.group()) for match in _PHONE_IN_TEXT.finditer(text)):
        return "phone"
    if (
        _PHONE.match(text)
        and not _DATE.match(text)
        and _phone_digits(text)
        and (text.startswith("+") or any(ch in text for ch in " ().-"))
    ):
        return "phone"
    return None


def shown_name(name: str) -> str:
    """A property or field name as a message may quote it: one that looks like personal data (a card
    number, an e-mail address, a phone number, an IP address) is never echoed."""
    return "<redacted>" if classify_value(name) is not None else name


def _strip(
    value: Any,
    judge_key: Callable[[str], str | None],
    judge_value: Callable[[Any], str | None],
    counts: Counter[str],
) -> Any:
    """Drop, at every depth, each property whose name or value a judge names a kind of; count by kind."""
    if isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            kind = judge_key(key) or judge_value(item)
            if kind is not None:
                counts[kind] += 1
                continue
            kept[key] = _strip(item, judge_key, judge_value, counts)
        return kept
    if isinstance(value, list):
        kept_items = []
        for item in value:
            kind = judge_value(item)
            if kind is not None:
                counts[kind] += 1
                continue
            kept_items.append(_strip(item, judge_key, judge_value, counts))
        return kept_items
    return value


def _card_kind(value: Any) -> str | None:
    return "card" if looks_like_card_number(value) else None


def _normalize(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _denied_name(name: str, extra_names: set[str]) -> bool:
    normalized = _normalize(name)
    if normalized in DENY_NAMES or normalized in extra_names:
        return True
    return any(word.lower() in DENY_WORDS for word in _WORD.findall(name))


def _phone_digits(text: str) -> bool:
    """E.164 numbers have 7 to 15 digits; longer digit runs are something else (ids, cards)."""
    return 7 <= sum(ch.isdigit() for ch in text) <= 15


def _is_ip(text: str) -> bool:
    if not text or len(text) > 45 or not any(ch in text for ch in ".:"):
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
