"""Tenant administration and API key authentication: the use cases, their ports and their errors."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from billing.domain.api_keys import (
    ApiKeyRecord,
    InvalidApiKey,
    generate_api_key,
    hash_api_key,
    is_well_formed,
    key_id_for,
    validate_raw_key,
)
from billing.domain.tenants import (
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidScope,
    InvalidTenant,
    PiiPolicy,
    Principal,
    Scope,
    Tenant,
    TenantError,
    TenantExists,
    TenantNotFound,
)

__all__ = [
    "ApiKeyExists",
    "ApiKeyNotFound",
    "InvalidApiKey",
    "InvalidScope",
    "InvalidTenant",
    "IssuedApiKey",
    "TenantError",
    "TenantExists",
    "TenantNotFound",
    "TenantService",
    "TenantStore",
    "UsagePlanPort",
]


class TenantStore(Protocol):
    """Persistence of tenants and hashed API keys (DynamoTenantStore implements it)."""

    def create_tenant(self, tenant: Tenant) -> None:
        """Raises TenantExists."""

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def set_pii_policy(self, tenant_id: str, policy: PiiPolicy) -> Tenant:
        """Raises TenantNotFound."""

    def create_api_key(self, record: ApiKeyRecord, key_hash: str) -> None:
        """Raises TenantNotFound or ApiKeyExists."""

    def find_api_key_by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, tenant_id: str, key_id: str, revoked_at: str) -> ApiKeyRecord:
        """Raises ApiKeyNotFound; revoking a revoked key returns it unchanged."""


class UsagePlanPort(Protocol):
    """Per-tenant throttling: an API Gateway usage plan (ApiGatewayUsagePlans implements it)."""

    def attach_key(self, name: str, value: str) -> str:
        """Make sure an API key with this value exists and is in the plan; returns its id. Idempotent."""


@dataclass(frozen=True)
class IssuedApiKey:
    """A freshly issued key: the only moment the raw key exists outside the caller's hands."""

    key_id: str
    raw_key: str = field(repr=False)
    scope: Scope
    tenant_id: str
    created_at: str = ""


def utc_now() -> datetime:
    return datetime.now(UTC)


_USAGE_KEY_ALPHABET = string.ascii_letters + string.digits


def new_usage_key() -> str:
    # API Gateway API key values must be at least 20 characters; letters and digits are always accepted.
    return "".join(secrets.choice(_USAGE_KEY_ALPHABET) for _ in range(40))


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def usage_key_name(tenant_id: str) -> str:
    """The name of a tenant's API Gateway API key (visible in the console)."""
    return f"tenant-{tenant_id}"


class TenantService:
    def __init__(
        self,
        store: TenantStore,
        api_gateway: UsagePlanPort | None = None,
        clock: Callable[[], datetime] = utc_now,
        usage_key_factory: Callable[[], str] = new_usage_key,
    ) -> None:
        self._store = store
        self._api_gateway = api_gateway
        self._clock = clock
        self._usage_key_factory = usage_key_factory

    def create_tenant(self, tenant_id: str, name: str, pii_policy: PiiPolicy | None = None) -> Tenant:
        """Store a new tenant, then (when a usage plan is configured) attach its API Gateway key.

        The tenant is stored first so a duplicate id fails before anything is created in API Gateway; if
        the attach step fails, `attach_usage_plan` repairs it (it is idempotent).
        """
        try:
            tenant = Tenant(
                tenant_id=tenant_id,
                name=name,
                created_at=_timestamp(self._clock()),
                pii_policy=pii_policy or PiiPolicy(),
                usage_key=self._usage_key_factory(),
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise InvalidTenant(f"invalid tenant: {problems}") from exc
        self._store.create_tenant(tenant)
        if self._api_gateway is not None:
            self._api_gateway.attach_key(usage_key_name(tenant.tenant_id), tenant.usage_key)
        return tenant

    def attach_usage_plan(self, tenant_id: str) -> str | None:
        """(Re)attach the tenant's usage key to the usage plan; the API key id, or None if not configured."""
        tenant = self.get_tenant(tenant_id)
        if self._api_gateway is None:
            return None
        return self._api_gateway.attach_key(usage_key_name(tenant.tenant_id), tenant.usage_key)

    def get_tenant(self, tenant_id: str) -> Tenant:
        tenant = self._store.get_tenant(tenant_id)
        if tenant is None:
            raise TenantNotFound(tenant_id)
        return tenant

    def set_pii_policy(self, tenant_id: str, policy: PiiPolicy) -> Tenant:
        return self._store.set_pii_policy(tenant_id, policy)

    def issue_api_key(self, tenant_id: str, scope: Scope | str, raw_key: str | None = None) -> IssuedApiKey:
        """Issue a key for the tenant; `raw_key` lets an operator fix its value (validated, never stored)."""
        try:
            scope = Scope(scope)
        except ValueError as exc:
            raise InvalidScope(scope) from exc
        raw_key = generate_api_key(scope) if raw_key is None else validate_raw_key(raw_key, scope)
        record = ApiKeyRecord(
            key_id=key_id_for(raw_key),
            tenant_id=tenant_id,
            scope=scope,
            created_at=_timestamp(self._clock()),
        )
        self._store.create_api_key(record, hash_api_key(raw_key))
        return IssuedApiKey(
            key_id=record.key_id,
            raw_key=raw_key,
            scope=scope,
            tenant_id=tenant_id,
            created_at=record.created_at,
        )

    def revoke_api_key(self, tenant_id: str, key_id: str) -> ApiKeyRecord:
        """Revoke one of the tenant's keys; another tenant's key id answers ApiKeyNotFound."""
        return self._store.revoke_api_key(tenant_id, key_id, _timestamp(self._clock()))

    def list_api_keys(self, tenant_id: str) -> list[ApiKeyRecord]:
        self.get_tenant(tenant_id)
        return self._store.list_api_keys(tenant_id)

    def authenticate(self, raw_key: str) -> Principal | None:
        """Who holds this key: None when it is malformed, unknown or revoked."""
        if not is_well_formed(raw_key):
            return None
        record = self._store.find_api_key_by_hash(hash_api_key(raw_key))
        if record is None or not record.active:
            return None
        return Principal(tenant_id=record.tenant_id, key_id=record.key_id, scope=record.scope)
