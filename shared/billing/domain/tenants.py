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


# ---- what tenant administration can fail with ---------------------------------------------------------


class TenantError(Exception):
    """Base of the errors below; each is a failure a caller handles differently."""


class TenantNotFound(TenantError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} not found")
        self.tenant_id = tenant_id


class TenantExists(TenantError):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id!r} already exists")
        self.tenant_id = tenant_id


class InvalidTenant(TenantError, ValueError):
    """Tenant id or name breaks the rules of `billing.domain.tenants.Tenant`."""


class ApiKeyNotFound(TenantError):
    def __init__(self, tenant_id: str, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} not found for tenant {tenant_id!r}")
        self.tenant_id = tenant_id
        self.key_id = key_id


class ApiKeyExists(TenantError):
    """The exact same key was issued before (only possible with an operator-fixed key)."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id!r} is already issued")
        self.key_id = key_id


class InvalidScope(TenantError, ValueError):
    def __init__(self, scope: object) -> None:
        allowed = ", ".join(s.value for s in Scope)
        super().__init__(f"unknown scope {scope!r} (expected one of: {allowed})")
