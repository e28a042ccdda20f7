"""The journal in the billing table: one hash-chained sequence of entries per (tenant, customer).

Items (keys from `billing.adapters.keys`): one per entry at `ledger_partition` / `entry_sort_key`, and the
head (last sequence, last hash) at `ledger_head_key`. Appending is a set of transaction items the caller
puts in the same `TransactWriteItems` as the fact it books (an invoice, a payment): every entry is a
conditional Put (never overwritten) and the head moves only from the sequence it was read at, so two
writers can never both append: one transaction fails, re-reads the head and tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from billing.adapters.dynamo import call
from billing.adapters.keys import ENTRY_PREFIX, entry_sort_key, key, ledger_head_key, ledger_partition
from billing.domain.ledger.accounts import Account, AccountKind, Direction
from billing.domain.ledger.chain import EMPTY_HEAD, JournalEntry, LedgerHead, chain_transactions
from billing.domain.ledger.transactions import JournalTransaction, TransactionCode
from billing.domain.usage_events import format_timestamp, parse_timestamp

_deserializer = TypeDeserializer()


class DynamoLedgerStore:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def head(self, tenant_id: str, customer_id: str) -> LedgerHead:
        item = call(
            self._table,
            lambda: self._client.get_item(
                TableName=self._table, Key=ledger_head_key(tenant_id, customer_id), ConsistentRead=True
            ),
        ).get("Item")
        if not item:
            return EMPTY_HEAD
        return LedgerHead(int(item["sequence"]["N"]), item["hash"]["S"])

    def entries(self, tenant_id: str, customer_id: str) -> list[JournalEntry]:
        """Every entry of the customer's journal, in sequence order."""
        pages = call(
            self._table,
            lambda: list(
                self._client.get_paginator("query").paginate(
                    TableName=self._table,
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :entry)",
                    ExpressionAttributeValues={
                        ":pk": {"S": ledger_partition(tenant_id, customer_id)},
                        ":entry": {"S": ENTRY_PREFIX},
                    },
                    ConsistentRead=True,
                )
            ),
        )
        return [_entry_from(item) for page in pages for item in page.get("Items", [])]

    def append_items(
        self, tenant_id: str, head: LedgerHead, transactions: Sequence[JournalTransaction]
    ) -> tuple[list[dict[str, Any]], list[JournalEntry]]:
        """The TransactWriteItems actions that append `transactions` after `head`, and the entries."""
        if not transactions:
            return [], []
        customer_id = transactions[0].postings[0].account.customer_id
        entries = chain_transactions(transactions, prev_hash=head.hash, start_sequence=head.next_sequence)
        partition = ledger_partition(tenant_id, customer_id)
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": _entry_item(partition, tenant_id, entry),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            for entry in entries
        ]
        last = entries[-1]
        head_update: dict[str, Any] = {
            "TableName": self._table,
            "Key": ledger_head_key(tenant_id, customer_id),
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


def _entry_item(partition: str, tenant_id: str, entry: JournalEntry) -> dict[str, Any]:
    return {
        **key(partition, entry_sort_key(entry.sequence)),
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
