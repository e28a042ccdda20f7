"""When a failed webhook delivery is tried again: the retry schedule, its jitter, `Retry-After`, and which
answers count as delivered or as a request to stop (pure: the caller passes the instants).

A non-2xx answer, or none within the sender's timeout, is retried on the schedule (seconds between
attempts, the first attempt immediate), stretched by a deterministic jitter and never earlier than the
receiver's `Retry-After`; after the last attempt the delivery is failed (dead-lettered). 410 Gone disables
the endpoint at once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime

MAX_SCHEDULE_ENTRIES = 30
MAX_DELAY_SECONDS = 86400 * 7
JITTER_FRACTION = Decimal("0.1")
MAX_RETRY_AFTER = timedelta(hours=24)

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class RetrySchedule:
    """Seconds to wait between consecutive attempts; the first attempt is immediate."""

    delays: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.delays, tuple):
            raise TypeError("a retry schedule's delays are a tuple of seconds")
        if not 1 <= len(self.delays) <= MAX_SCHEDULE_ENTRIES:
            raise ValueError(
                f"a retry schedule has 1 to {MAX_SCHEDULE_ENTRIES} delays, got {len(self.delays)}"
            )
        for position, delay in enumerate(self.delays, start=1):
            if isinstance(delay, bool) or not isinstance(delay, int):
                raise TypeError(f"retry delay {position} is not a whole number of seconds: {delay!r}")
            if not 1 <= delay <= MAX_DELAY_SECONDS:
                raise ValueError(
                    f"retry delay {position} is {delay} s; a delay is 1 to {MAX_DELAY_SECONDS} seconds"
                )

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1


# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h: ten attempts over about three days.
DEFAULT_RETRY_SCHEDULE = RetrySchedule((5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400))


def parse_schedule(text: str) -> RetrySchedule:
    """A schedule from its configured text: comma-separated whole seconds, spaces allowed ("5, 300,1800").

    This reads an environment variable, so a refusal names the entry and what is wrong with it.
    """
    if not text.strip():
        raise ValueError("the retry schedule is empty: expected comma-separated seconds such as 5,300,1800")
    entries = [entry.strip() for entry in text.split(",")]
    if len(entries) > MAX_SCHEDULE_ENTRIES:
        raise ValueError(f"the retry schedule has {len(entries)} entries; at most {MAX_SCHEDULE_ENTRIES}")
    delays: list[int] = []
    for position, entry in enumerate(entries, start=1):
        if not entry:
            raise ValueError(f"retry schedule entry {position} is empty (in {text!r})")
        # ASCII digits only: int() would also take "+5", "5_0" and other scripts' digits.
        if not _DIGITS.fullmatch(entry):
            raise ValueError(f"retry schedule entry {position} ({entry!r}) is not a whole number of seconds")
        significant = entry.lstrip("0")
        # Length first: int() of a very long string is slow, and refused beyond 4300 digits.
        if not significant or len(significant) > len(str(MAX_DELAY_SECONDS)):
            delay = 0 if not significant else MAX_DELAY_SECONDS + 1
        else:
            delay = int(significant)
        if not 1 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(
                f"retry schedule entry {position} ({entry!r}) is out of range: "
                f"a delay is 1 to {MAX_DELAY_SECONDS} seconds"
            )
        delays.append(delay)
    return RetrySchedule(tuple(delays))


def jittered_delay(delay_seconds: int, delivery_id: str, attempt: int) -> timedelta:
    """`delay_seconds` stretched by a jitter in [0, JITTER_FRACTION), to the millisecond.

    The jitter comes from SHA-256 of the delivery and the attempt, not from a random source: a re-run of
    the same workflow step computes the same instant, while many deliveries failing together (an endpoint
    down) spread their retries instead of arriving at once.
    """
    if isinstance(delay_seconds, bool) or not isinstance(delay_seconds, int) or delay_seconds < 0:
        raise ValueError(f"a delay is a non-negative whole number of seconds, got {delay_seconds!r}")
    # NUL separates the two parts: the attempt's digits never contain one, so no two pairs hash alike.
    digest = hashlib.sha256(f"{delivery_id}\x00{attempt}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big")  # uniform in [0, 2**64)
    numerator, denominator = JITTER_FRACTION.as_integer_ratio()
    delay_ms = delay_seconds * 1000
    # Integer arithmetic: floor(delay * fraction * draw / 2**64) < delay * fraction since draw < 2**64.
    jitter_ms = delay_ms * numerator * draw // (denominator << 64)
    return timedelta(milliseconds=delay_ms + jitter_ms)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """How long a receiver asked us to wait (RFC 9110 `Retry-After`), or None when it did not say (or said
    something unreadable). An HTTP-date in the past is `timedelta(0)`; anything is capped at
    MAX_RETRY_AFTER so a receiver cannot park a delivery for ever.
    """
    _require_aware(now, "now")
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DIGITS.fullmatch(text):
        significant = text.lstrip("0") or "0"
        # A number too long to be under the cap is the cap (and int() of it would be slow or refused).
        if len(significant) > len(str(int(MAX_RETRY_AFTER.total_seconds()))):
            return MAX_RETRY_AFTER
        return min(timedelta(seconds=int(significant)), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # negative numbers, fractions and garbage land here
    if when.tzinfo is None:
        # asctime dates and "-0000" parse without a zone; an HTTP-date is always GMT.
        when = when.replace(tzinfo=UTC)
    return min(max(when - now, timedelta(0)), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class RetryDecision:
    """When to try a delivery again (None: never, it is failed) and what decided it."""

    next_attempt_at: datetime | None
    reason: str


def next_attempt(
    schedule: RetrySchedule,
    attempts_made: int,
    delivery_id: str,
    failed_at: datetime,
    retry_after: timedelta | None = None,
) -> RetryDecision:
    """After `attempts_made` attempts that all failed (the last at `failed_at`), when to try again.

    The schedule's delay (jittered) applies unless the receiver's `Retry-After` is longer: a receiver may
    ask us to wait, never to hurry.
    """
    if isinstance(attempts_made, bool) or not isinstance(attempts_made, int) or attempts_made < 1:
        raise ValueError(f"attempts_made counts the failed attempts (at least 1), got {attempts_made!r}")
    _require_aware(failed_at, "failed_at")
    if attempts_made >= schedule.max_attempts:
        return RetryDecision(
            None, f"schedule exhausted: {attempts_made} of {schedule.max_attempts} attempts made"
        )
    delay = jittered_delay(schedule.delays[attempts_made - 1], delivery_id, attempts_made + 1)
    if retry_after is not None:
        asked = min(retry_after, MAX_RETRY_AFTER)
        if asked > delay:
            return RetryDecision(failed_at + asked, f"retry-after {_seconds_text(asked)} s")
    return RetryDecision(failed_at + delay, "schedule")


def is_success(status_code: int | None) -> bool:
    """A delivered webhook: any 2xx answer (None: no answer)."""
    return status_code is not None and 200 <= status_code <= 299


def disables_endpoint(status_code: int | None) -> bool:
    """410 Gone: the receiver says the endpoint no longer exists, so it is disabled without more retries."""
    return status_code == 410


def _require_aware(instant: datetime, name: str) -> None:
    # A naive datetime would be read in the machine's zone by whoever stores it.
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")


def _seconds_text(duration: timedelta) -> str:
    seconds, rest = divmod(duration, timedelta(seconds=1))
    if not rest:
        return str(seconds)
    return f"{seconds}.{rest.microseconds:06d}".rstrip("0")
