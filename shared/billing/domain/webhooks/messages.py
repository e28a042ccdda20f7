"""The messages of the webhook queue: what the sender is asked to do.

- a lane kick: walk the lane (endpoint, customer) and send what is due, in order. `due` is set on the
  timer of a retry: the queue delays a message 15 minutes at most, so a kick that arrives before its
  time is sent again for the rest (a chain), as long as it is still the lane's timer;
- a replay: send one delivery again now, outside its lane's order;
- a resume: an endpoint was enabled again: kick each of its lanes (a page at a time, the cursor of the
  next page carried by the next resume message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billing.domain.errors import InvalidEvent, PoisonMessage
from billing.domain.ids import is_key_id
from billing.domain.usage_events import format_timestamp, parse_timestamp

MAX_QUEUE_DELAY_SECONDS = 900  # SQS DelaySeconds


@dataclass(frozen=True)
class LaneKick:
    tenant_id: str
    endpoint_id: str
    customer_id: str
    due: datetime | None = None

    def body(self) -> str:
        message: dict[str, Any] = {
            "kind": "lane",
            "tenant_id": self.tenant_id,
            "endpoint_id": self.endpoint_id,
            "customer_id": self.customer_id,
        }
        if self.due is not None:
            message["due"] = format_timestamp(self.due)
        return json.dumps(message, sort_keys=True, separators=(",", ":"))

    @property
    def lane(self) -> tuple[str, str, str]:
        return (self.tenant_id, self.endpoint_id, self.customer_id)


@dataclass(frozen=True)
class ReplayRequest:
    tenant_id: str
    delivery_id: str

    def body(self) -> str:
        return json.dumps(
            {"kind": "replay", "tenant_id": self.tenant_id, "delivery_id": self.delivery_id},
            sort_keys=True,
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class ResumeRequest:
    tenant_id: str
    endpoint_id: str
    cursor: str | None = None

    def body(self) -> str:
        message: dict[str, Any] = {
            "kind": "resume",
            "tenant_id": self.tenant_id,
            "endpoint_id": self.endpoint_id,
        }
        if self.cursor is not None:
            message["cursor"] = self.cursor
        return json.dumps(message, sort_keys=True, separators=(",", ":"))


SenderMessage = LaneKick | ReplayRequest | ResumeRequest
_IDS = {
    "lane": ("tenant_id", "endpoint_id", "customer_id"),
    "replay": ("tenant_id", "delivery_id"),
    "resume": ("tenant_id", "endpoint_id"),
}
MAX_CURSOR_LENGTH = 4096


def decode(body: str) -> SenderMessage:
    """A queue message back to what it asks; PoisonMessage when it is not one of ours."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to be one of ours
        raise PoisonMessage("webhook queue message is not JSON", code="undecodable") from exc
    if not isinstance(message, dict):
        raise PoisonMessage("webhook queue message is not an object", code="schema_invalid")
    kind = message.get("kind")
    ids = _IDS.get(kind) if isinstance(kind, str) else None
    if ids is None or not all(is_key_id(message.get(name)) for name in ids):
        raise PoisonMessage(
            "webhook queue message names no lane, delivery or endpoint", code="schema_invalid"
        )
    if kind == "replay":
        return ReplayRequest(message["tenant_id"], message["delivery_id"])
    if kind == "resume":
        cursor = message.get("cursor")
        if cursor is not None and (not isinstance(cursor, str) or not 0 < len(cursor) <= MAX_CURSOR_LENGTH):
            raise PoisonMessage("webhook queue message has an unreadable cursor", code="schema_invalid")
        return ResumeRequest(message["tenant_id"], message["endpoint_id"], cursor)
    due = message.get("due")
    try:
        when = None if due is None else parse_timestamp(due, "due")
    except InvalidEvent as exc:
        raise PoisonMessage(
            "webhook queue message has an unreadable due time", code="schema_invalid"
        ) from exc
    return LaneKick(message["tenant_id"], message["endpoint_id"], message["customer_id"], when)


def queue_delay(due: datetime, now: datetime) -> int:
    """Seconds to delay a timer message: until `due`, at most the queue's limit (then it is chained)."""
    seconds = -((now - due) // timedelta(seconds=1))  # rounded up: never early by a fraction
    return max(0, min(MAX_QUEUE_DELAY_SECONDS, seconds))
