"""The journal in the billing table: one hash-chained sequence of entries per (tenant, customer).

Items: entries at `pk=TENANT#<t>#LEDGER#<customer>`, `sk=ENTRY#<sequence, 12 digits>`, and the head at the
same pk, `sk=HEAD` (last sequence, last hash). Appending is a set of transaction items the caller puts
in the same `TransactWriteItems` as the fact it books (an invoice, a payment): every entry is a
conditional Put (never overwritten) and the head moves only from the sequence it was read at, so two
writers can never both append: one transaction fails, re-reads the head and tries again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from billing.domain.ledger.accounts import Account, AccountKind, Direction
from billing.domain.ledger.chain import FIRST_SEQUENCE, GENESIS_HASH, JournalEntry, chain_entries
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode
from billing.domain.usage_events import format_timestamp, parse_timestamp

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class LedgerHead:
    """Where the next transaction goes: after `sequence` (0 for an empty journal) and `hash`."""

    sequence: int
    hash: str

    @property
    def next_sequence(self) -> int:
        return self.sequence + 1 if self.sequence else FIRST_SEQUENCE


EMPTY_HEAD = LedgerHead(0, GENESIS_HASH)


def ledger_partition(tenant_id: str, customer_id: str) -> str:
    return f"TENANT#{tenant_id}#LEDGER#{customer_id}"


def entry_sort_key(sequence: int) -> str:
    return f"ENTRY#{sequence:012d}"


class DynamoLedgerStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def head(self, tenant_id: str, customer_id: str) -> LedgerHead:
        item = self._client.get_item(
            TableName=self._table,
            Key={"pk": {"S": ledger_partition(tenant_id, customer_id)}, "sk": {"S": "HEAD"}},
            ConsistentRead=True,
        ).get("Item")
        if not item:
            return EMPTY_HEAD
        return LedgerHead(int(item["sequence"]["N"]), item["hash"]["S"])

    def entries(self, tenant_id: str, customer_id: str) -> list[JournalEntry]:
        """Every entry of the customer's journal, in sequence order."""
        pages = self._client.get_paginator("query").paginate(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :entry)",
            ExpressionAttributeValues={
                ":pk": {"S": ledger_partition(tenant_id, customer_id)},
                ":entry": {"S": "ENTRY#"},
            },
            ConsistentRead=True,
        )
        return [_entry_from(item) for page in pages for item in page.get("Items", [])]

    def append_items(
        self, tenant_id: str, head: LedgerHead, transaction: JournalTransaction
    ) -> tuple[list[dict[str, Any]], list[JournalEntry]]:
        """The TransactWriteItems actions that append `transaction` after `head`, and the entries."""
        customer_id = transaction.postings[0].account.customer_id
        entries = chain_entries(head.hash, head.next_sequence, transaction)
        pk = ledger_partition(tenant_id, customer_id)
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _entry_item(pk, tenant_id, entry),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for entry in entries
        ]
        last = entries[-1]
        head_update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": pk}, "sk": {"S": "HEAD"}},
            "UpdateExpression": "SET #seq = :seq, #hash = :hash, entity = :entity, tenant_id = :tenant",
            "ExpressionAttributeNames": {"#seq": "sequence", "#hash": "hash"},
            "ExpressionAttributeValues": {
                ":seq": {"N": str(last.sequence)},
                ":hash": {"S": last.hash},
                ":entity": {"S": "ledger_head"},
                ":tenant": {"S": tenant_id},
            },
        }
        if head.sequence == 0:
            head_update["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            head_update["ConditionExpression"] = "#seq = :read"
            head_update["ExpressionAttributeValues"][":read"] = {"N": str(head.sequence)}
        actions.append({"Update": head_update})
        return actions, entries


def _entry_item(pk: str, tenant_id: str, entry: JournalEntry) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"S": entry_sort_key(entry.sequence)},
        "entity": {"S": "journal_entry"},
        "tenant_id": {"S": tenant_id},
        "customer_id": {"S": entry.account.customer_id},
        "sequence": {"N": str(entry.sequence)},
        "transaction_id": {"S": entry.transaction_id},
        "code": {"S": entry.code.value},
        "account": {"S": entry.account.kind.value},
        "direction": {"S": entry.direction.value},
        "amount_minor": {"N": str(entry.amount_minor)},
        "currency": {"S": entry.currency.code},
        "created_at": {"S": format_timestamp(entry.created_at)},
        "hash": {"S": entry.hash},
        "prev_hash": {"S": entry.prev_hash},
        "leg": {"N": str(entry.leg)},
        "legs": {"N": str(entry.legs)},
    }


def _entry_from(item: dict[str, Any]) -> JournalEntry:
    data = {name: _deserializer.deserialize(value) for name, value in item.items()}
    created_at: datetime = parse_timestamp(data["created_at"], "created_at")
    return JournalEntry(
        sequence=int(data["sequence"]),
        transaction_id=data["transaction_id"],
        code=TransactionCode(data["code"]),
        account=Account(data["customer_id"], data["currency"], AccountKind(data["account"])),
        direction=Direction(data["direction"]),
        amount_minor=int(data["amount_minor"]),
        currency=data["currency"],
        created_at=created_at,
        hash=data["hash"],
        prev_hash=data["prev_hash"],
        leg=int(data["leg"]),
        legs=int(data["legs"]),
    )
