"""Tenants, API keys and who is calling: the identity side of the domain."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Scope(StrEnum):
    INGEST = "ingest"  # POST /v1/events only
    ADMIN = "admin"  # everything

    def allows(self, required: Scope) -> bool:
        return self is Scope.ADMIN or self is required


class PiiPolicy(BaseModel):
    """How a tenant's event properties are stripped before storage.

    `allow` set: only those property keys are kept (nothing else is looked at).
    `allow` unset: keys on the built-in deny-list plus `deny` are dropped, and so are values that look
    like emails, phone numbers, IP addresses or card numbers.
    """

    model_config = ConfigDict(frozen=True)

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] = ()


class Tenant(BaseModel):
    model_config = ConfigDict(frozen=True)

    tenant_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    name: str = Field(min_length=1, max_length=200)
    created_at: str
    pii_policy: PiiPolicy = PiiPolicy()
    # API Gateway usage identifier: the value of the tenant's API Gateway API key, returned by the
    # Lambda authorizer so the usage plan throttles per tenant.
    usage_key: str


class Principal(BaseModel):
    """The authenticated caller of one request (what the authorizer hands to the api function)."""

    model_config = ConfigDict(frozen=True)

    tenant_id: str
    key_id: str
    scope: Scope
