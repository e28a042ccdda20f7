"""Usage events: the normalized event, the limits an accepted event keeps, and its storage shard.

What a client may send (the wire shapes, ids, property values) is checked at the edge by the request
models of `billing.api.models.events`, with the rules here (`check_properties`) and in
`billing.domain.ids` / `billing.domain.numbers`; what an event must satisfy to be accepted at a given
moment (`check_limits`: not too old, not too far ahead, not too large) is decided here.
Pure: the receipt time is passed in, never read from a clock.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.domain import canonical_json
from billing.domain.errors import InvalidEvent
from billing.domain.numbers import storable_problem
from billing.domain.pii import shown_name

MAX_ID_LENGTH = 128
MAX_TYPE_LENGTH = 128
MAX_PROPERTY_KEY_LENGTH = 256
MAX_PROPERTY_DEPTH = 6


@dataclass(frozen=True)
class EventLimits:
    max_age: timedelta = timedelta(days=35)
    max_future: timedelta = timedelta(minutes=5)
    # Serialized size of one event; far below the SQS message and DynamoDB item limits.
    max_bytes: int = 32 * 1024


@dataclass(frozen=True)
class UsageEvent:
    """A validated event of one tenant, properties already stripped of PII."""

    tenant_id: str
    customer_id: str
    event_id: str
    type: str
    timestamp: datetime
    received_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)

    def to_message(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "customer_id": self.customer_id,
            "type": self.type,
            "timestamp": format_timestamp(self.timestamp),
            "received_at": format_timestamp(self.received_at),
            "properties": self.properties,
        }

    @classmethod
    def from_message(cls, tenant_id: str, data: Any) -> UsageEvent:
        """Rebuild an event from a queue message; structural problems raise InvalidEvent."""
        if not isinstance(data, dict):
            raise InvalidEvent("event is not a JSON object")
        _require_fields(data, ("id", "customer_id", "type", "timestamp", "received_at"))
        properties = data.get("properties", {})
        if not isinstance(properties, dict):
            raise InvalidEvent("properties is not an object", field="properties")
        check_properties(properties)
        return cls(
            tenant_id=tenant_id,
            customer_id=_identifier(data["customer_id"], "customer_id"),
            event_id=_identifier(data["id"], "id"),
            type=_identifier(data["type"], "type", MAX_TYPE_LENGTH),
            timestamp=parse_timestamp(data["timestamp"], "timestamp"),
            received_at=parse_timestamp(data["received_at"], "received_at"),
            properties=properties,
        )

    @property
    def content_hash(self) -> str:
        """SHA-256 of what the client said (not of when it arrived): spots an id reused for other content."""
        return canonical_json.sha256_hex(
            {
                "customer_id": self.customer_id,
                "id": self.event_id,
                "type": self.type,
                "timestamp": format_timestamp(self.timestamp),
                "properties": self.properties,
            }
        )


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds, `Z`: fixed width, so the text sorts as the instants do."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.strftime('%m-%dT%H:%M:%S.%f')}Z"


RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
_RFC3339 = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})\Z"
)


def parse_timestamp(value: Any, field_name: str = "timestamp") -> datetime:
    """An RFC 3339 date-time with offset, as UTC; fractions beyond microseconds are truncated."""
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidEvent(
            f"{field_name} must be an RFC 3339 date-time with an offset, e.g. 2026-03-04T10:00:00Z",
            code="invalid_field",
            field=field_name,
        )
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    offset = "+00:00" if match["offset"] in ("Z", "z") else match["offset"]
    try:
        # OverflowError: year 1 or 9999 moved out of range into UTC by its offset.
        return datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{offset}").astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidEvent(
            f"{field_name} {value[:40]!r} is not a valid date-time", code="invalid_field", field=field_name
        ) from None


def check_limits(event: UsageEvent, received_at: datetime, limits: EventLimits) -> None:
    """Whether an event may be accepted when it is received: raises InvalidEvent naming the problem."""
    if event.timestamp < received_at - limits.max_age:
        raise InvalidEvent(
            f"timestamp is more than {limits.max_age.days} days old; such events are not accepted",
            code="timestamp_too_old",
            field="timestamp",
        )
    if event.timestamp > received_at + limits.max_future:
        raise InvalidEvent(
            f"timestamp is more than {int(limits.max_future.total_seconds())} seconds in the future",
            code="timestamp_in_future",
            field="timestamp",
        )
    size = len(canonical_json.dumps(event.to_message()).encode())
    if size > limits.max_bytes:
        raise InvalidEvent(
            f"event is {size} bytes; the limit is {limits.max_bytes} bytes", code="event_too_large"
        )


def shard_for(event_id: str, shards: int) -> int:
    """The write shard of an event: stable across processes (SHA-256, never the salted `hash()`)."""
    digest = hashlib.sha256(event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def _require_fields(raw: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if raw.get(name) is None:
            raise InvalidEvent(f"{name} is required", code="missing_field", field=name)


def _identifier(value: Any, name: str, max_length: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidEvent(f"{name} must be a string", code="invalid_field", field=name)
    if not 1 <= len(value) <= max_length:
        raise InvalidEvent(f"{name} must be 1 to {max_length} characters", code="invalid_field", field=name)
    if value != value.strip() or any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in value):
        raise InvalidEvent(
            f"{name} must not contain control characters or leading/trailing white space",
            code="invalid_field",
            field=name,
        )
    return value


def check_properties(value: Any, depth: int = 0, path: str = "properties") -> None:
    """Property values the system can keep: nesting at most 6 deep, names of 1 to 256 characters, valid
    Unicode text, numbers DynamoDB stores exactly. Raises InvalidEvent naming the first problem."""
    if depth > MAX_PROPERTY_DEPTH:
        raise InvalidEvent(
            f"{path} nests deeper than {MAX_PROPERTY_DEPTH} levels", code="invalid_field", field="properties"
        )
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_PROPERTY_KEY_LENGTH:
                raise InvalidEvent(
                    f"property names must be 1 to {MAX_PROPERTY_KEY_LENGTH} characters",
                    code="invalid_field",
                    field="properties",
                )
            _check_text(key, path)
            check_properties(item, depth + 1, f"{path}.{shown_name(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_properties(item, depth + 1, f"{path}[{index}]")
    elif isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | Decimal):
        _check_number(Decimal(value), path)
    else:
        raise InvalidEvent(f"{path} has an unsupported value type", code="invalid_field", field="properties")


def _check_number(number: Decimal, path: str) -> None:
    problem = storable_problem(number)
    if problem is not None:
        raise InvalidEvent(f"{path} {problem}", code="invalid_field", field=path)


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidEvent(
            f"{path} is not valid Unicode text (a lone surrogate)", code="invalid_field", field="properties"
        ) from None
