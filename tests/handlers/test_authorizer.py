"""The TOKEN authorizer, invoked in-process with the sample event against moto."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from billing import resources
from billing.adapters.tenant_store import DynamoTenantStore
from billing.domain.tenants import Scope, Tenant
from billing.runtime import logger
from billing.services.tenants import IssuedApiKey, TenantService
from local.lambda_context import new_context
from tests.conftest import load_event


@pytest.fixture
def handler(aws: dict[str, str]) -> Any:
    from functions.authorizer import handler as module

    return module.handler


@pytest.fixture
def service(aws: dict[str, str]) -> TenantService:
    return TenantService(DynamoTenantStore(aws[resources.BILLING_TABLE.env_var]))


@pytest.fixture
def tenant(service: TenantService) -> Tenant:
    return service.create_tenant("acme", "Acme Inc")


@pytest.fixture
def ingest_key(service: TenantService, tenant: Tenant) -> IssuedApiKey:
    return service.issue_api_key(tenant.tenant_id, Scope.INGEST)


def token_event(authorization: str) -> dict[str, Any]:
    event = load_event("authorizer_token.json")
    event["authorizationToken"] = authorization
    return event


def test_sample_event_is_a_token_event_for_the_events_route() -> None:
    event = load_event("authorizer_token.json")
    assert event["type"] == "TOKEN"
    assert event["authorizationToken"].startswith("Bearer bk_")
    assert event["methodArn"].endswith("/prod/POST/v1/events")


def test_valid_key_is_allowed_on_the_whole_api_with_tenant_context_and_usage_key(
    handler: Any, tenant: Tenant, ingest_key: IssuedApiKey
) -> None:
    response = handler(token_event(f"Bearer {ingest_key.raw_key}"), new_context("authorizer"))

    assert response["principalId"] == ingest_key.key_id
    assert response["policyDocument"] == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Action": "execute-api:Invoke",
                "Effect": "Allow",
                "Resource": ["arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/*"],
            }
        ],
    }
    assert response["context"] == {"tenant_id": "acme", "key_id": ingest_key.key_id, "scope": "ingest"}
    assert all(isinstance(value, str) for value in response["context"].values())
    assert response["usageIdentifierKey"] == tenant.usage_key


def test_bearer_scheme_is_case_insensitive(handler: Any, ingest_key: IssuedApiKey) -> None:
    response = handler(token_event(f"bearer {ingest_key.raw_key}"), new_context("authorizer"))
    assert response["principalId"] == ingest_key.key_id


def test_unknown_key_is_unauthorized(handler: Any, ingest_key: IssuedApiKey) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(load_event("authorizer_token.json"), new_context("authorizer"))


def test_revoked_key_is_unauthorized(handler: Any, service: TenantService, ingest_key: IssuedApiKey) -> None:
    service.revoke_api_key("acme", ingest_key.key_id)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(token_event(f"Bearer {ingest_key.raw_key}"), new_context("authorizer"))


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not-a-key", "bk_ingest_" + "A" * 43, "Bearer a b"],
)
def test_missing_or_malformed_token_is_unauthorized(
    handler: Any, ingest_key: IssuedApiKey, authorization: str
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(token_event(authorization), new_context("authorizer"))


def test_event_without_token_is_unauthorized(handler: Any, ingest_key: IssuedApiKey) -> None:
    event = load_event("authorizer_token.json")
    del event["authorizationToken"]
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(event, new_context("authorizer"))


def test_garbage_method_arn_is_unauthorized(handler: Any, ingest_key: IssuedApiKey) -> None:
    event = token_event(f"Bearer {ingest_key.raw_key}")
    event["methodArn"] = "not-an-arn"
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(event, new_context("authorizer"))


def test_logs_and_metrics_carry_ids_never_the_raw_key(
    handler: Any,
    ingest_key: IssuedApiKey,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", log_stream)

    handler(token_event(f"Bearer {ingest_key.raw_key}"), new_context("authorizer"))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(token_event(f"Bearer {ingest_key.raw_key[:-1]}Z"), new_context("authorizer"))

    logs, metrics_out = log_stream.getvalue(), capsys.readouterr().out
    for text in (logs, metrics_out):
        assert ingest_key.raw_key[:-1] not in text
    records = [json.loads(line) for line in logs.splitlines()]
    granted = next(r for r in records if r["message"] == "authorization granted")
    assert (granted["tenant_id"], granted["key_id"]) == ("acme", ingest_key.key_id)
    denied = next(r for r in records if r["message"] == "authorization denied")
    assert denied["reason"] == "unknown_or_revoked_key"
    assert "tenant_id" not in denied  # per-invocation keys are cleared between requests
    emitted = [json.loads(line) for line in metrics_out.splitlines() if line.startswith("{")]
    assert any(blob.get("AuthFailures") == [1.0] for blob in emitted)
