"""Ports several services share (a service's own ports are declared beside it)."""

from __future__ import annotations

from typing import Protocol

from billing.domain.catalog import CustomerProfile


class CustomerLookup(Protocol):
    """A tenant's customer by id, or None (the catalog store provides it)."""

    def get_customer(self, tenant_id: str, customer_id: str) -> CustomerProfile | None: ...
