"""The rule every id of the API follows (event ids, customer ids, plan and meter ids, invoice ids, ...).

An id is 1 to 128 characters of printable ASCII without `/ ? # %` or white space: it appears in URL
paths, storage keys and logs, so it must survive all three unchanged (no character that a URL or a key
would treat specially, nothing to percent-decode). An id that looks like a card number, an e-mail
address or a phone number is refused as well: ids are stored forever and, unlike event properties,
cannot be stripped of personal data later.
"""

from __future__ import annotations

import re
from typing import Any

from billing.domain.pii import classify_value

_FORBIDDEN = frozenset("/?#%")
_PRINTABLE = re.compile(r"[!-~]{1,128}")
_PERSONAL_KINDS = {"card": "a card number", "email": "an e-mail address", "phone": "a phone number"}
ID_RULE = "1 to 128 characters of printable ASCII without / ? # % or white space"


def id_problem(value: Any) -> str | None:
    """Why `value` cannot be an id (a sentence fragment), or None when it can."""
    if not isinstance(value, str):
        return "must be a string"
    if not _PRINTABLE.fullmatch(value) or _FORBIDDEN.intersection(value):
        return f"must be {ID_RULE}"
    kind = classify_value(value)
    if kind in _PERSONAL_KINDS:
        return (
            f"looks like {_PERSONAL_KINDS[kind]}; ids are stored forever, so they must not hold personal "
            "data or card numbers"
        )
    return None


def is_valid_id(value: Any) -> bool:
    return id_problem(value) is None


def is_key_id(value: Any) -> bool:
    """Whether `value` can name a stored object the system made itself (an invoice, a payment, a run, a
    webhook endpoint or delivery): the id rule's characters and length, without the personal-data test.
    Such ids are hex digests, and a run of their digits may pass the Luhn check: they must still be
    found. (Ids a client chooses were held to the whole rule when they were stored.)"""
    return isinstance(value, str) and bool(_PRINTABLE.fullmatch(value)) and not _FORBIDDEN.intersection(value)


def shown_id(value: Any) -> str:
    """An id as a message may quote it: only when it is a valid id (a refused one may be a card number,
    an e-mail address or anything else a message must not echo)."""
    return repr(value) if is_valid_id(value) else "(not a valid id)"
