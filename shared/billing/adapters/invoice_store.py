"""Issued invoices and recorded payments in the billing table, written with their journal entries.

Items (keys from `billing.adapters.keys`; `data` is the record of `billing.adapters.records`): the
invoice (listed per customer by period start through gsi1), an immutable audit record of its rating and
tax decisions beside it, and each recorded payment. `finalize` writes the invoice, the audit record, the
ledger entries and head, the webhook events that announce it (the outbox) and moves the due index to the
next period in one `TransactWriteItems`: all or nothing. `record_payment` writes the payment, the
invoice's next state, the entries and the events the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import boto3
from botocore.exceptions import ClientError

from billing.adapters import records
from billing.adapters.aws_errors import error_code, is_transient
from billing.adapters.billing_runs import due_item, due_item_key
from billing.adapters.dynamo import call, query_page
from billing.adapters.keys import (
    GSI1,
    INVOICE_PREFIX,
    invoice_audit_key,
    invoice_key,
    invoices_index,
    invoices_index_sort_key,
    payment_key,
    tenant_prefix,
)
from billing.adapters.ledger_store import DynamoLedgerStore
from billing.adapters.outbox_store import DynamoOutbox
from billing.domain import canonical_json
from billing.domain.billing_runs import DuePeriod
from billing.domain.errors import Conflict, InvoiceAlreadyFinalized, TransientFailure
from billing.domain.invoicing import IssuedInvoice, RecordedPayment
from billing.domain.ledger.chain import LedgerSnapshot
from billing.domain.ledger.transactions import JournalTransaction
from billing.domain.pages import Page
from billing.domain.usage_events import format_timestamp
from billing.domain.webhooks.events import NewEvent

MAX_HEAD_RACES = 5

# Builds what to write from the customer's journal as it stands (called again after a lost race).
Issue = Callable[[LedgerSnapshot], tuple[IssuedInvoice, Sequence[JournalTransaction]]]
# The webhook events that announce the invoice `Issue` made (or its state after a payment).
Announce = Callable[[IssuedInvoice], Sequence[NewEvent]]


class DynamoInvoiceStore:
    def __init__(
        self, table_name: str, ledger: DynamoLedgerStore, outbox: DynamoOutbox, client: Any = None
    ) -> None:
        self._table = table_name
        self._ledger = ledger
        self._outbox = outbox
        self._client = client or boto3.client("dynamodb")

    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice | None:
        item = call(
            self._table,
            lambda: self._client.get_item(
                TableName=self._table, Key=invoice_key(tenant_id, invoice_id), ConsistentRead=True
            ),
        ).get("Item")
        return None if not item else _invoice_from(item)

    def list_for_customer(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[IssuedInvoice]:
        """The customer's invoices by period start (through gsi1: a just-finalized one may lag a moment)."""
        return query_page(
            self._client,
            self._table,
            index=GSI1,
            partition=invoices_index(tenant_id, customer_id),
            prefix=INVOICE_PREFIX,
            limit=limit,
            cursor=cursor,
            convert=_invoice_from,
            table_prefix=tenant_prefix(tenant_id),
        )

    def finalize(
        self,
        tenant_id: str,
        customer_id: str,
        issue: Issue,
        announce: Announce,
        audit: dict[str, Any],
        due: DuePeriod,
        next_due: DuePeriod | None,
    ) -> IssuedInvoice:
        """Write the issued invoice, its audit record, its journal entries, the webhook events `announce`
        makes of it and the due index, or nothing.

        `issue` builds the invoice and its transactions from the customer's journal (credit to apply);
        it is called again after a lost race for the ledger or outbox head, so the entries chain after
        whatever was appended in between. Raises InvoiceAlreadyFinalized when the invoice exists,
        TransientFailure when throttled.
        """

        def facts(invoice: IssuedInvoice) -> list[dict[str, Any]]:
            writes: list[dict[str, Any]] = [
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
                            **invoice_audit_key(tenant_id, invoice.id),
                            "entity": {"S": "audit_record"},
                            "tenant_id": {"S": tenant_id},
                            "data": {"S": canonical_json.dumps(audit)},
                            "sha256": {"S": canonical_json.sha256_hex(audit)},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Delete": {"TableName": self._table, "Key": due_item_key(due)}},
            ]
            if next_due is not None:
                writes.append({"Put": {"TableName": self._table, "Item": due_item(next_due)}})
            return writes

        return self._write_with_ledger(
            tenant_id,
            customer_id,
            issue,
            announce,
            facts,
            guards={0: lambda invoice: InvoiceAlreadyFinalized(invoice.id)},
        )

    # -- payments -----------------------------------------------------------------------------------

    def get_payment(self, tenant_id: str, payment_id: str) -> RecordedPayment | None:
        item = call(
            self._table,
            lambda: self._client.get_item(
                TableName=self._table, Key=payment_key(tenant_id, payment_id), ConsistentRead=True
            ),
        ).get("Item")
        return None if not item else records.payment_from_record(canonical_json.loads(item["data"]["S"]))

    def record_payment(
        self,
        tenant_id: str,
        before: IssuedInvoice,
        after: IssuedInvoice,
        payment: RecordedPayment,
        transaction: JournalTransaction,
        events: Sequence[NewEvent],
    ) -> None:
        """The payment, the invoice's next state, the journal entries and the webhook events, all or
        nothing.

        The invoice is updated only if it is still at the revision `before` was read at: a payment recorded
        meanwhile makes this one a Conflict to retry, never a double settlement.
        """

        def facts(_: IssuedInvoice) -> list[dict[str, Any]]:
            return [
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": {
                            **payment_key(tenant_id, payment.id),
                            "entity": {"S": "payment"},
                            "tenant_id": {"S": tenant_id},
                            "invoice_id": {"S": payment.invoice_id},
                            "data": {"S": canonical_json.dumps(records.payment_record(payment))},
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self._table,
                        "Key": invoice_key(tenant_id, after.id),
                        "UpdateExpression": "SET #data = :new, #status = :status, revision = :next",
                        "ConditionExpression": "revision = :read",
                        "ExpressionAttributeNames": {"#data": "data", "#status": "status"},
                        "ExpressionAttributeValues": {
                            ":new": {"S": canonical_json.dumps(records.invoice_record(after))},
                            ":status": {"S": after.status.value},
                            ":read": {"N": str(before.revision)},
                            ":next": {"N": str(before.revision + 1)},
                        },
                    }
                },
            ]

        self._write_with_ledger(
            tenant_id,
            after.customer_id,
            lambda _snapshot: (after, [transaction]),  # a payment's entries do not depend on the journal
            lambda _: events,
            facts,
            guards={
                0: lambda _: Conflict("this payment reference was recorded meanwhile", code="payment_exists"),
                1: lambda _: Conflict(
                    "the invoice changed while this payment was recorded; retry", code="invoice_changed"
                ),
            },
        )

    def _snapshot(self, tenant_id: str, customer_id: str) -> LedgerSnapshot:
        head = self._ledger.head(tenant_id, customer_id)
        entries = self._ledger.entries(tenant_id, customer_id) if head.sequence else []
        # An append between the two reads shows as entries beyond the head: chain after the head read
        # (the transaction's condition on it then fails, and the next attempt reads both again).
        return LedgerSnapshot(head, tuple(entry for entry in entries if entry.sequence <= head.sequence))

    def _write_with_ledger(
        self,
        tenant_id: str,
        customer_id: str,
        issue: Issue,
        announce: Announce,
        facts: Callable[[IssuedInvoice], list[dict[str, Any]]],
        guards: dict[int, Callable[[IssuedInvoice], Exception]],
    ) -> IssuedInvoice:
        """One TransactWriteItems: the business items `facts`, the journal entries `issue` makes and the
        webhook events `announce` makes (the outbox).

        A failed condition on the fact at index i raises `guards[i](invoice)`; any other failed condition is
        the ledger or outbox head having moved (another writer appended): re-read them, chain after them,
        try again.
        """
        for _ in range(MAX_HEAD_RACES):
            snapshot = self._snapshot(tenant_id, customer_id)
            last_sequence = self._outbox.head(tenant_id, customer_id)
            invoice, transactions = issue(snapshot)
            ledger_actions, _ = self._ledger.append_items(tenant_id, snapshot.head, transactions)
            outbox_actions, _ = self._outbox.append_items(
                tenant_id, customer_id, last_sequence, announce(invoice)
            )
            try:
                self._client.transact_write_items(
                    TransactItems=[*facts(invoice), *ledger_actions, *outbox_actions]
                )
            except ClientError as exc:
                reasons = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                if error_code(exc) == "TransactionCanceledException" and reasons:
                    for index, guard in guards.items():
                        if index < len(reasons) and reasons[index] == "ConditionalCheckFailed":
                            raise guard(invoice) from exc
                    if "ConditionalCheckFailed" in reasons:
                        continue  # another writer moved a head: re-read it and chain after it
                    if any(code in ("ThrottlingError", "TransactionConflict") for code in reasons):
                        raise TransientFailure(f"billing table busy: {','.join(reasons)}") from exc
                if is_transient(exc):
                    raise TransientFailure(f"billing table: {error_code(exc)}") from exc
                raise
            return invoice
        raise TransientFailure(f"the ledger or outbox of customer {customer_id} kept moving; retry")

    @staticmethod
    def _invoice_item(tenant_id: str, invoice: IssuedInvoice) -> dict[str, Any]:
        start = format_timestamp(invoice.period.start_utc)  # fixed width: sorts as the instants do
        return {
            **invoice_key(tenant_id, invoice.id),
            "entity": {"S": "invoice"},
            "tenant_id": {"S": tenant_id},
            "customer_id": {"S": invoice.customer_id},
            "subscription_id": {"S": invoice.subscription_id},
            "status": {"S": invoice.status.value},
            "revision": {"N": str(invoice.revision)},
            "gsi1pk": {"S": invoices_index(tenant_id, invoice.customer_id)},
            "gsi1sk": {"S": invoices_index_sort_key(start, invoice.id)},
            "data": {"S": canonical_json.dumps(records.invoice_record(invoice))},
        }


def _invoice_from(item: dict[str, Any]) -> IssuedInvoice:
    revision = int(item.get("revision", {}).get("N", "0"))
    return records.invoice_from_record(canonical_json.loads(item["data"]["S"]), revision)
