"""What every DynamoDB adapter shares: throttling as TransientFailure, transactions that report why they
were cancelled, and pages of an item collection with opaque cursors."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.domain.errors import MalformedRequest, TransientFailure
from billing.domain.pages import Page

T = TypeVar("T")
MAX_CURSOR_LENGTH = 4096
MAX_FILTERED_READS = 10  # Query calls a filtered page may take (each reads up to `limit + 1` items)


def call(table: str, operation: Callable[[], T]) -> T:
    """Run one DynamoDB call; throttling and service faults become TransientFailure (retry later)."""
    try:
        return operation()
    except ClientError as exc:
        if is_transient(exc):
            raise TransientFailure(f"{table}: {error_code(exc)}") from exc
        raise


def transact(client: Any, table: str, writes: list[dict[str, Any]]) -> list[str] | None:
    """Run the writes as one transaction; None when it committed, else each write's cancellation code.

    Cancelled without a failed condition (a conflicting concurrent transaction, throttling): that is
    worth a retry, so it raises TransientFailure.
    """
    try:
        call(table, lambda: client.transact_write_items(TransactItems=writes))
    except ClientError as exc:
        if error_code(exc) != "TransactionCanceledException":
            raise
        reasons = [
            str(reason.get("Code") or "None") for reason in exc.response.get("CancellationReasons", [])
        ]
        if "ConditionalCheckFailed" not in reasons:
            raise TransientFailure(f"{table}: transaction cancelled ({','.join(reasons)})") from exc
        return reasons
    return None


def query_page(
    client: Any,
    table: str,
    *,
    index: str | None,
    partition: str,
    prefix: str,
    limit: int,
    cursor: str | None,
    convert: Callable[[dict[str, Any]], T],
    table_prefix: str,
    descending: bool = False,
    only: tuple[str, str] | None = None,
) -> Page[T]:
    """One page of an item collection; one item more than asked tells whether there is another page.

    `table_prefix` is what the table key (pk) of every listed item starts with: a cursor naming any other
    item is refused, so a cursor cannot be forged to reach another tenant's or kind's items. `descending`
    lists by sort key from the end; `only` = (attribute, value) keeps the items whose string attribute has
    that value (a filter: the items read past it still cost their read, so keep it for small collections).
    """
    pk, sk = ("gsi1pk", "gsi1sk") if index else ("pk", "sk")
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": f"{pk} = :pk AND begins_with({sk}, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": partition}, ":prefix": {"S": prefix}},
        "Limit": limit + 1,
    }
    if descending:
        request["ScanIndexForward"] = False
    if only is not None:
        request["FilterExpression"] = "#only = :only"
        request["ExpressionAttributeNames"] = {"#only": only[0]}
        request["ExpressionAttributeValues"][":only"] = {"S": only[1]}
    if index:
        request["IndexName"] = index
    else:
        request["ConsistentRead"] = True
    key_names = tuple(dict.fromkeys(("pk", "sk", pk, sk)))
    if cursor is not None:
        request["ExclusiveStartKey"] = decode_cursor(
            cursor, key_names, pk, partition, sk, prefix, table_prefix
        )
    items: list[dict[str, Any]] = []
    reads = 0
    while True:
        response = call(table, lambda: client.query(**request))
        items += response.get("Items", [])
        last = response.get("LastEvaluatedKey")
        reads += 1
        if len(items) > limit or not last:
            break
        if only is not None and reads >= MAX_FILTERED_READS and len(items) <= limit:
            # A filter that keeps few items: answer what was found, with a cursor to read on, rather than
            # reading the whole collection in one request.
            return Page([convert(item) for item in items], encode_cursor({n: last[n] for n in key_names}))
        request["ExclusiveStartKey"] = last
    if len(items) <= limit:
        return Page([convert(item) for item in items], None)
    kept = items[:limit]
    next_key = {name: kept[-1][name] for name in key_names}
    return Page([convert(item) for item in kept], encode_cursor(next_key))


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_cursor(
    cursor: str,
    key_names: tuple[str, ...],
    pk: str,
    partition: str,
    sk: str,
    prefix: str,
    table_prefix: str,
) -> dict[str, Any]:
    """A cursor back to an ExclusiveStartKey, checked to lie in the collection being listed."""
    invalid = MalformedRequest(
        "cursor is not a cursor of this list; start again without it", code="invalid_cursor"
    )
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise invalid
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid from None
    if not isinstance(key, dict) or set(key) != set(key_names):
        raise invalid
    for value in key.values():
        if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
            raise invalid
        if not 1 <= len(value["S"]) <= 1024:
            raise invalid
    if key[pk]["S"] != partition or not key[sk]["S"].startswith(prefix):
        raise invalid
    if not key["pk"]["S"].startswith(table_prefix):
        raise invalid
    return key
