"""Tenants and API keys on moto: DynamoTenantStore + TenantService (+ API Gateway usage plans)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from billing import resources
from billing.adapters.tenant_store import ApiGatewayUsagePlans, DynamoTenantStore
from billing.domain.api_keys import hash_api_key
from billing.domain.tenants import PiiPolicy, Principal, Scope
from billing.services.tenants import (
    ApiKeyExists,
    ApiKeyNotFound,
    InvalidApiKey,
    InvalidScope,
    InvalidTenant,
    TenantExists,
    TenantNotFound,
    TenantService,
)

TABLE = resources.BILLING_TABLE.local_name


class SteppingClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store(aws: dict[str, str]) -> DynamoTenantStore:
    return DynamoTenantStore(aws[resources.BILLING_TABLE.env_var])


@pytest.fixture
def service(store: DynamoTenantStore) -> TenantService:
    return TenantService(store, clock=SteppingClock())


@pytest.fixture
def usage_plan_id(aws: dict[str, str]) -> str:
    client = boto3.client("apigateway")
    plan = client.create_usage_plan(name="billing-tenants", throttle={"rateLimit": 100.0, "burstLimit": 200})
    return plan["id"]


def raw_item(pk: str, sk: str) -> dict | None:
    return (
        boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    )


def test_created_tenant_is_stored_under_its_profile_item_and_read_back(service: TenantService) -> None:
    tenant = service.create_tenant("acme", "Acme Inc", PiiPolicy(deny=("email",)))

    assert tenant.created_at == "2026-03-01T00:00:01Z"
    assert len(tenant.usage_key) == 40
    assert tenant.usage_key.isalnum()
    assert service.get_tenant("acme") == tenant
    item = raw_item("T#acme", "TENANT")
    assert item is not None
    assert item["name"] == {"S": "Acme Inc"}
    assert item["pii_policy"] == {"M": {"deny": {"L": [{"S": "email"}]}}}


def test_allow_list_pii_policy_survives_the_round_trip(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc", PiiPolicy(allow=("tokens", "region")))
    assert service.get_tenant("acme").pii_policy == PiiPolicy(allow=("tokens", "region"))

    updated = service.set_pii_policy("acme", PiiPolicy(allow=(), deny=("ip",)))

    assert updated.pii_policy == PiiPolicy(allow=(), deny=("ip",))
    assert service.get_tenant("acme").pii_policy == PiiPolicy(allow=(), deny=("ip",))


def test_creating_a_tenant_twice_fails_and_keeps_the_first(service: TenantService) -> None:
    first = service.create_tenant("acme", "Acme Inc")
    with pytest.raises(TenantExists, match="acme"):
        service.create_tenant("acme", "Impostor")
    assert service.get_tenant("acme") == first


@pytest.mark.parametrize(("tenant_id", "name"), [("", "x"), ("has space", "x"), ("a" * 65, "x"), ("ok", "")])
def test_invalid_tenant_ids_and_names_are_rejected_before_any_write(
    service: TenantService, tenant_id: str, name: str
) -> None:
    with pytest.raises(InvalidTenant):
        service.create_tenant(tenant_id, name)


def test_unknown_tenant_answers_not_found(service: TenantService) -> None:
    with pytest.raises(TenantNotFound):
        service.get_tenant("ghost")
    with pytest.raises(TenantNotFound):
        service.set_pii_policy("ghost", PiiPolicy())
    with pytest.raises(TenantNotFound):
        service.list_api_keys("ghost")
    assert raw_item("T#ghost", "TENANT") is None


def test_issued_key_authenticates_as_its_tenant_and_scope(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")

    issued = service.issue_api_key("acme", Scope.INGEST)

    assert issued.raw_key.startswith("bk_ingest_")
    assert issued.raw_key not in repr(issued)
    assert service.authenticate(issued.raw_key) == Principal(
        tenant_id="acme", key_id=issued.key_id, scope=Scope.INGEST
    )


def test_only_the_hash_of_a_key_is_stored(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    issued = service.issue_api_key("acme", "admin")

    item = raw_item(f"APIKEY#{hash_api_key(issued.raw_key)}", "APIKEY")

    assert item is not None
    assert issued.raw_key not in str(item)
    assert item["gsi1pk"] == {"S": "T#acme#APIKEYS"}
    assert item["gsi1sk"] == {"S": f"APIKEY#{issued.key_id}"}
    assert item["scope"] == {"S": "admin"}
    assert "revoked_at" not in item


def test_issuing_a_key_for_an_unknown_tenant_writes_nothing(service: TenantService) -> None:
    fixed = "x" * 40
    with pytest.raises(TenantNotFound):
        service.issue_api_key("ghost", Scope.ADMIN, fixed)
    assert raw_item(f"APIKEY#{hash_api_key(fixed)}", "APIKEY") is None


def test_an_operator_can_fix_a_key_but_not_a_malformed_or_reused_one(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    fixed = "local-admin-key-0123456789abcdefghij"

    issued = service.issue_api_key("acme", Scope.ADMIN, fixed)

    assert issued.raw_key == fixed
    assert service.authenticate(fixed) == Principal(tenant_id="acme", key_id=issued.key_id, scope=Scope.ADMIN)
    with pytest.raises(ApiKeyExists):
        service.issue_api_key("acme", Scope.ADMIN, fixed)
    with pytest.raises(InvalidApiKey):
        service.issue_api_key("acme", Scope.ADMIN, "too-short")
    with pytest.raises(InvalidScope):
        service.issue_api_key("acme", "superuser")


def test_unknown_and_malformed_keys_do_not_authenticate(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    service.issue_api_key("acme", Scope.INGEST)

    assert service.authenticate("bk_ingest_" + "A" * 43) is None
    assert service.authenticate("") is None
    assert service.authenticate("nope") is None


def test_revoked_key_no_longer_authenticates_and_revoking_again_is_harmless(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    issued = service.issue_api_key("acme", Scope.INGEST)

    revoked = service.revoke_api_key("acme", issued.key_id)

    assert revoked.revoked_at is not None
    assert not revoked.active
    assert service.authenticate(issued.raw_key) is None
    again = service.revoke_api_key("acme", issued.key_id)
    assert again.revoked_at == revoked.revoked_at


def test_list_keys_shows_every_key_of_the_tenant_and_only_those(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    service.create_tenant("globex", "Globex")
    admin = service.issue_api_key("acme", Scope.ADMIN)
    ingest = service.issue_api_key("acme", Scope.INGEST)
    service.issue_api_key("globex", Scope.INGEST)
    service.revoke_api_key("acme", ingest.key_id)

    keys = {key.key_id: key for key in service.list_api_keys("acme")}

    assert set(keys) == {admin.key_id, ingest.key_id}
    assert keys[admin.key_id].active
    assert keys[admin.key_id].scope is Scope.ADMIN
    assert not keys[ingest.key_id].active


def test_a_tenant_cannot_revoke_another_tenants_key(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    service.create_tenant("globex", "Globex")
    theirs = service.issue_api_key("globex", Scope.INGEST)

    with pytest.raises(ApiKeyNotFound):
        service.revoke_api_key("acme", theirs.key_id)
    with pytest.raises(ApiKeyNotFound):
        service.revoke_api_key("acme", "key_000000000000")
    assert service.authenticate(theirs.raw_key) is not None


def test_usage_plan_key_is_created_and_attached_when_configured(
    store: DynamoTenantStore, usage_plan_id: str
) -> None:
    service = TenantService(store, api_gateway=ApiGatewayUsagePlans(usage_plan_id))

    tenant = service.create_tenant("acme", "Acme Inc")

    plan_keys = boto3.client("apigateway").get_usage_plan_keys(usagePlanId=usage_plan_id)["items"]
    assert [(k["name"], k["value"]) for k in plan_keys] == [("tenant-acme", tenant.usage_key)]
    # Re-attaching (repair after a partial failure) neither duplicates the key nor fails.
    assert service.attach_usage_plan("acme") == plan_keys[0]["id"]
    assert len(boto3.client("apigateway").get_api_keys(nameQuery="tenant-acme")["items"]) == 1


def test_duplicate_tenant_creates_nothing_in_api_gateway(
    store: DynamoTenantStore, usage_plan_id: str
) -> None:
    service = TenantService(store, api_gateway=ApiGatewayUsagePlans(usage_plan_id))
    service.create_tenant("acme", "Acme Inc")

    with pytest.raises(TenantExists):
        service.create_tenant("acme", "Acme again")

    assert len(boto3.client("apigateway").get_api_keys()["items"]) == 1


def test_without_a_usage_plan_nothing_touches_api_gateway(service: TenantService) -> None:
    service.create_tenant("acme", "Acme Inc")
    assert service.attach_usage_plan("acme") is None
    assert boto3.client("apigateway").get_api_keys()["items"] == []
