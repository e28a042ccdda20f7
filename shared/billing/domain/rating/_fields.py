"""Small strict readers for catalog objects sent as JSON (meters, charges, plans, customers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from billing.domain.rating.errors import InvalidCatalog

MAX_KEY_LENGTH = 128


def require_object(value: Any, what: str, *, code: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidCatalog(f"{what} must be a JSON object", code=code)
    return value


def reject_unknown(data: dict[str, Any], allowed: Iterable[str], what: str, *, code: str) -> None:
    # A misspelt field ("unit_prize") must fail loudly instead of silently pricing at a default.
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidCatalog(
            f"unknown field(s) in {what}: {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            code=code,
            field=unknown[0],
        )


def identifier(value: Any, field: str, *, code: str, max_length: int = MAX_KEY_LENGTH) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_length or value != value.strip():
        raise InvalidCatalog(
            f"{field} must be a string of 1 to {max_length} characters without surrounding spaces",
            code=code,
            field=field,
        )
    return value


def optional_identifier(value: Any, field: str, *, code: str) -> str | None:
    return None if value is None else identifier(value, field, code=code)
