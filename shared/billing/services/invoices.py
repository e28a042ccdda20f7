"""Reading a tenant's issued invoices: one by id, or a customer's, a page at a time."""

from __future__ import annotations

from typing import Protocol

from billing.domain.errors import NotFound
from billing.domain.ids import is_key_id, is_valid_id, shown_id
from billing.domain.invoicing import IssuedInvoice
from billing.domain.pages import Page


class InvoiceReader(Protocol):
    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice | None: ...

    def list_for_customer(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[IssuedInvoice]: ...


class InvoiceService:
    def __init__(self, invoices: InvoiceReader) -> None:
        self._invoices = invoices

    def get(self, tenant_id: str, invoice_id: str) -> IssuedInvoice:
        invoice = self._invoices.get(tenant_id, invoice_id) if is_key_id(invoice_id) else None
        if invoice is None:
            raise NotFound(f"invoice {shown_id(invoice_id)} not found", code="invoice_not_found")
        return invoice

    def list_for_customer(
        self, tenant_id: str, customer_id: str, limit: int, cursor: str | None
    ) -> Page[IssuedInvoice]:
        """By period start; a customer with no invoice (or no such customer) has an empty list."""
        if not is_valid_id(customer_id):
            return Page([], None)
        return self._invoices.list_for_customer(tenant_id, customer_id, limit, cursor)
