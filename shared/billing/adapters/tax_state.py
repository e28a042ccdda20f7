"""What every Lambda container must share about an external tax provider, in the billing table.

Items (billing table, keys from `billing.adapters.keys`):
  breaker          consecutive_failures, opened_at_ns?, trial_started_ns?, version, updated_at
  last-known-good  rates = the `LastKnownGoodRates.to_json()` of that one key (canonical JSON), learned_on

The breaker's times are whatever clock the service passes (wall-clock epoch nanoseconds: the only clock
that containers on different hosts share). Writes are conditional on the `version` that was read; a
writer that loses the race gets False and re-applies its transition to the fresh state (the service
does), so no transition is lost to a race, and a half-open trial is claimed by one container only.

Last-known-good rates are one item per rate key, so an item stays small however many postal codes are
learned, and a write replaces a key's rates outright (unless they are unchanged): the last writer wins,
which is the newest rate the provider answered (two writers within the same instant hold the same rate).
`<seller>` is a digest of the seller's country and registrations: what a provider answers depends on
where the seller collects tax, so sellers configured differently never estimate from each other's rates.
Key parts are percent-encoded, `*` standing for "none", so a postal code or tax code cannot forge a key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import boto3
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code
from billing.adapters.dynamo import call
from billing.adapters.keys import BREAKER_SK, LAST_KNOWN_GOOD_PREFIX, tax_provider_partition
from billing.adapters.keys import key as item_key
from billing.domain.errors import TransientFailure
from billing.domain.tax.model import SellerConfig, TaxRequest
from billing.domain.tax.resilience import CircuitBreaker, LastKnownGoodRates, RateKey

_NONE = "*"
_BATCH_GET_LIMIT = 100
_BATCH_GET_ATTEMPTS = 5

T = TypeVar("T")


def seller_scope(seller: SellerConfig) -> str:
    """A short stable digest of what makes a provider's answer seller-specific."""
    text = json.dumps([seller.country, sorted(seller.registrations)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rate_sort_key(seller: SellerConfig, key: RateKey) -> str:
    country, region, postal_code, tax_code, business = key
    parts = [seller_scope(seller), country, region, postal_code, tax_code, "B2B" if business else "B2C"]
    encoded = (_NONE if part is None else quote(part, safe="") for part in parts)
    return LAST_KNOWN_GOOD_PREFIX + "#".join(encoded)


def request_rate_keys(request: TaxRequest) -> list[RateKey]:
    """Every key `LastKnownGoodRates.lookup` may consult for the request's lines (exact, then regional)."""
    keys: dict[RateKey, None] = {}
    business = request.customer.is_business
    for line in request.lines:
        location = request.location_of(line)
        code = request.tax_code_of(line)
        keys[(location.country, location.region, location.postal_code, code, business)] = None
        keys[(location.country, location.region, None, code, business)] = None
    return list(keys)


class DynamoBreakerStore:
    """The circuit breaker of each provider, one item, versioned."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def load(self, provider: str, template: CircuitBreaker) -> tuple[CircuitBreaker, int]:
        """The stored breaker with the template's threshold and cool-down, and its version (0: none yet).

        Thresholds are configuration, not state: a deploy that changes them applies to the stored state.
        """
        response = _call(
            lambda: self._client.get_item(
                TableName=self._table,
                Key=item_key(tax_provider_partition(provider), BREAKER_SK),
                ConsistentRead=True,
            )
        )
        item = response.get("Item")
        if not item:
            return template, 0
        return (
            CircuitBreaker(
                failure_threshold=template.failure_threshold,
                cool_down_ns=template.cool_down_ns,
                consecutive_failures=int(item["consecutive_failures"]["N"]),
                opened_at_ns=_optional_int(item.get("opened_at_ns")),
                trial_started_ns=_optional_int(item.get("trial_started_ns")),
            ),
            int(item["version"]["N"]),
        )

    def save(self, provider: str, breaker: CircuitBreaker, expected_version: int, now: datetime) -> bool:
        """Store `breaker` as version `expected_version + 1`; False when another writer got there first."""
        item: dict[str, Any] = {
            **item_key(tax_provider_partition(provider), BREAKER_SK),
            "entity": {"S": "tax_provider_breaker"},
            "provider": {"S": provider},
            "consecutive_failures": {"N": str(breaker.consecutive_failures)},
            "version": {"N": str(expected_version + 1)},
            "updated_at": {"S": now.isoformat()},
        }
        if breaker.opened_at_ns is not None:
            item["opened_at_ns"] = {"N": str(breaker.opened_at_ns)}
        if breaker.trial_started_ns is not None:
            item["trial_started_ns"] = {"N": str(breaker.trial_started_ns)}
        condition: dict[str, Any]
        if expected_version == 0:
            condition = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "version = :expected",
                "ExpressionAttributeValues": {":expected": {"N": str(expected_version)}},
            }
        try:
            _call(lambda: self._client.put_item(TableName=self._table, Item=item, **condition))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True


class DynamoLastKnownGoodStore:
    """The rates each provider last answered, one item per (seller, location, tax code, B2B/B2C)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def load(self, provider: str, request: TaxRequest) -> LastKnownGoodRates:
        """The known rates the request's lines could be estimated with (an eventually consistent read:
        a rate learned a moment ago elsewhere may be missed, and then the rules engine estimates)."""
        partition = tax_provider_partition(provider)
        wanted = [
            item_key(partition, rate_sort_key(request.seller, key)) for key in request_rate_keys(request)
        ]
        entries: list[Mapping[str, Any]] = []
        for start in range(0, len(wanted), _BATCH_GET_LIMIT):
            for item in self._batch_get(wanted[start : start + _BATCH_GET_LIMIT]):
                entries.extend(json.loads(item["rates"]["S"]))
        return LastKnownGoodRates.from_json(entries)

    def save(self, provider: str, seller: SellerConfig, learned: LastKnownGoodRates, now: datetime) -> None:
        """Replace the stored rates of every key in `learned` (learned from one quote for `seller`)."""
        partition = tax_provider_partition(provider)
        for entry in learned.to_json():
            key: RateKey = (
                entry["country"],
                entry["region"],
                entry["postal_code"],
                entry["tax_code"],
                entry["business"],
            )
            learned_on = max((rate["learned_on"] for rate in entry["rates"]), default="")
            item = {
                **item_key(partition, rate_sort_key(seller, key)),
                "entity": {"S": "tax_last_known_good"},
                "provider": {"S": provider},
                "rates": {"S": json.dumps([entry], separators=(",", ":"), sort_keys=True)},
                "learned_on": {"S": learned_on},
                "updated_at": {"S": now.isoformat()},
            }
            self._put(item)

    def _put(self, item: dict[str, Any]) -> None:
        # Unchanged rates are not rewritten: the billing table's stream is the outbox, and every close of
        # a customer in a known place would otherwise put a record on it for nothing.
        try:
            _call(
                lambda: self._client.put_item(
                    TableName=self._table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(pk) OR rates <> :rates",
                    ExpressionAttributeValues={":rates": item["rates"]},
                )
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def _batch_get_once(self, request_items: dict[str, Any]) -> dict[str, Any]:
        return _call(lambda: self._client.batch_get_item(RequestItems=request_items))

    def _batch_get(self, keys: list[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ProjectionExpression": "rates"}}
        for _ in range(_BATCH_GET_ATTEMPTS):
            response = self._batch_get_once(pending)
            yield from response.get("Responses", {}).get(self._table, [])
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return
        raise TransientFailure("billing table: last-known-good rates still unprocessed after retries")


def _optional_int(value: Mapping[str, str] | None) -> int | None:
    return None if value is None else int(value["N"])


def _call(operation: Callable[[], T]) -> T:
    return call("billing table", operation)
