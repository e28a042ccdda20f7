"""Finalized invoices in the billing table, written in one transaction with their journal entries.

Items: the invoice at `pk=TENANT#<t>#INVOICE#<id>`, `sk=INVOICE` (listed per customer through gsi1:
`gsi1pk=TENANT#<t>#CUSTOMER#<c>#INVOICES`, `gsi1sk=INVOICE#<period start>#<id>`), and an immutable
audit record of the rating and tax decisions at `sk=AUDIT`. `finalize` writes the invoice, the audit
record, the ledger entries and head, and moves the due index to the next period in one
`TransactWriteItems`: all or nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.billing_runs import DuePeriod, due_item, due_key
from billing.adapters.catalog_store import query_page
from billing.adapters.ledger_store import DynamoLedgerStore, LedgerHead
from billing.domain import canonical_json
from billing.domain.errors import Conflict, TransientFailure
from billing.domain.ledger.transactions import JournalTransaction
from billing.services.catalog import Page

MAX_HEAD_RACES = 5


class InvoiceAlreadyFinalized(Exception):
    """The invoice exists: the finalize step ran before (a retry); nothing was written this time."""


@dataclass(frozen=True)
class StoredInvoice:
    tenant_id: str
    data: dict[str, Any]  # the API shape

    @property
    def id(self) -> str:
        return str(self.data["id"])


def invoice_key(tenant_id: str, invoice_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant_id}#INVOICE#{invoice_id}"}, "sk": {"S": "INVOICE"}}


def payment_key(tenant_id: str, payment_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"TENANT#{tenant_id}#PAYMENT#{payment_id}"}, "sk": {"S": "PAYMENT"}}


def invoices_index(tenant_id: str, customer_id: str) -> str:
    return f"TENANT#{tenant_id}#CUSTOMER#{customer_id}#INVOICES"


class DynamoInvoiceStore:
    def __init__(self, table_name: str, ledger: DynamoLedgerStore, client: Any = None) -> None:
        self._table = table_name
        self._ledger = ledger
        self._client = client or boto3.client("dynamodb")

    def get(self, tenant_id: str, invoice_id: str) -> StoredInvoice | None:
        item = self._client.get_item(
            TableName=self._table, Key=invoice_key(tenant_id, invoice_id), ConsistentRead=True
        ).get("Item")
        return None if not item else StoredInvoice(tenant_id, canonical_json.loads(item["data"]["S"]))

    def list_for_customer(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[StoredInvoice]:
        """The customer's invoices by period start (through gsi1: a just-finalized one may lag a moment)."""
        return query_page(
            self._client,
            self._table,
            index="gsi1",
            partition=invoices_index(tenant_id, customer_id),
            prefix="INVOICE#",
            limit=limit,
            cursor=cursor,
            convert=lambda item: StoredInvoice(tenant_id, canonical_json.loads(item["data"]["S"])),
            table_prefix=f"TENANT#{tenant_id}#INVOICE#",
        )

    def finalize(
        self,
        tenant_id: str,
        invoice: dict[str, Any],
        audit: dict[str, Any],
        booking: Callable[[LedgerHead], JournalTransaction | None],
        due: DuePeriod,
        next_due: DuePeriod | None,
    ) -> list[Any]:
        """Write everything or nothing; returns the journal entries written.

        `booking` builds the journal transaction for a head (it is called again after a lost race for
        the head, so the entries chain after whatever was appended in between). Raises
        InvoiceAlreadyFinalized when the invoice exists, TransientFailure when throttled.
        """
        facts = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": self._invoice_item(tenant_id, invoice),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": invoice_key(tenant_id, str(invoice["id"]))["pk"],
                        "sk": {"S": "AUDIT"},
                        "entity": {"S": "audit_record"},
                        "tenant_id": {"S": tenant_id},
                        "data": {"S": canonical_json.dumps(audit)},
                        "sha256": {"S": canonical_json.sha256_hex(audit)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {"Delete": {"TableName": self._table, "Key": due_key(due)}},
        ]
        if next_due is not None:
            facts.append({"Put": {"TableName": self._table, "Item": due_item(next_due)}})
        return self._write_with_ledger(
            tenant_id,
            str(invoice["customer_id"]),
            facts,
            booking,
            guards={0: lambda: InvoiceAlreadyFinalized(str(invoice["id"]))},
        )

    # -- payments -----------------------------------------------------------------------------------

    def get_payment(self, tenant_id: str, payment_id: str) -> dict[str, Any] | None:
        item = self._client.get_item(
            TableName=self._table, Key=payment_key(tenant_id, payment_id), ConsistentRead=True
        ).get("Item")
        return None if not item else dict(canonical_json.loads(item["data"]["S"]))

    def record_payment(
        self,
        tenant_id: str,
        before: dict[str, Any],
        invoice: dict[str, Any],
        payment: dict[str, Any],
        booking: Callable[[], JournalTransaction],
    ) -> None:
        """The payment, the invoice's new amounts and the journal entries, all or nothing.

        The invoice is updated only if it is still `before`, what the caller read (its stored JSON): a payment
        recorded meanwhile makes this one a Conflict to retry, never a double settlement.
        """
        facts = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        **payment_key(tenant_id, str(payment["id"])),
                        "entity": {"S": "payment"},
                        "tenant_id": {"S": tenant_id},
                        "invoice_id": {"S": str(invoice["id"])},
                        "data": {"S": canonical_json.dumps(payment)},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": invoice_key(tenant_id, str(invoice["id"])),
                    "UpdateExpression": "SET #data = :new, #status = :status",
                    "ConditionExpression": "#data = :old",
                    "ExpressionAttributeNames": {"#data": "data", "#status": "status"},
                    "ExpressionAttributeValues": {
                        ":new": {"S": canonical_json.dumps(invoice)},
                        ":old": {"S": canonical_json.dumps(before)},
                        ":status": {"S": str(invoice["status"])},
                    },
                }
            },
        ]
        transaction = booking()  # a payment's entries do not depend on where they chain
        self._write_with_ledger(
            tenant_id,
            str(invoice["customer_id"]),
            facts,
            lambda _head: transaction,
            guards={
                0: lambda: Conflict("this payment reference was recorded meanwhile", code="payment_exists"),
                1: lambda: Conflict(
                    "the invoice changed while this payment was recorded; retry", code="invoice_changed"
                ),
            },
        )

    def _write_with_ledger(
        self,
        tenant_id: str,
        customer_id: str,
        facts: list[dict[str, Any]],
        booking: Callable[[LedgerHead], JournalTransaction | None],
        guards: dict[int, Callable[[], Exception]],
    ) -> list[Any]:
        """One TransactWriteItems: `facts` (the business items) and the journal entries `booking` makes.

        A failed condition on the fact at index i raises `guards[i]()`; any other failed condition is the
        ledger head having moved (another writer appended): re-read it, chain after it, try again.
        Returns the journal entries written.
        """
        for _ in range(MAX_HEAD_RACES):
            head = self._ledger.head(tenant_id, customer_id)
            transaction = booking(head)
            entries: list[Any] = []
            actions = list(facts)
            if transaction is not None:
                ledger_actions, entries = self._ledger.append_items(tenant_id, head, transaction)
                actions.extend(ledger_actions)
            try:
                self._client.transact_write_items(TransactItems=actions)
            except ClientError as exc:
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                if error_code(exc) == "TransactionCanceledException" and reasons:
                    for index, guard in guards.items():
                        if index < len(reasons) and reasons[index] == "ConditionalCheckFailed":
                            raise guard() from exc
                    if "ConditionalCheckFailed" in reasons:
                        continue  # another writer moved the ledger head: re-read it and chain after it
                    if any(code in ("ThrottlingError", "TransactionConflict") for code in reasons):
                        raise TransientFailure(f"billing table busy: {','.join(reasons)}") from exc
                if is_transient(exc):
                    raise TransientFailure(f"billing table: {error_code(exc)}") from exc
                raise
            return entries
        raise TransientFailure(f"the ledger of customer {customer_id} kept moving; retry")

    @staticmethod
    def _invoice_item(tenant_id: str, invoice: dict[str, Any]) -> dict[str, Any]:
        return {
            **invoice_key(tenant_id, str(invoice["id"])),
            "entity": {"S": "invoice"},
            "tenant_id": {"S": tenant_id},
            "customer_id": {"S": str(invoice["customer_id"])},
            "subscription_id": {"S": str(invoice["subscription_id"])},
            "status": {"S": str(invoice["status"])},
            "gsi1pk": {"S": invoices_index(tenant_id, str(invoice["customer_id"]))},
            "gsi1sk": {"S": f"INVOICE#{invoice['period']['start']}#{invoice['id']}"},
            "data": {"S": canonical_json.dumps(invoice)},
        }
