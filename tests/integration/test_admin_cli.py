"""`billing-admin` end to end on moto: output, exit codes and one-line errors."""

from __future__ import annotations

import json
import socket
from typing import Any

import boto3
import pytest

from billing import resources
from billing.adapters.tenant_store import DynamoTenantStore
from billing.cli.admin import main
from billing.services.tenants import TenantNotFound, TenantService


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    output = json.loads(captured.out) if code == 0 and captured.out.startswith("{") else captured.out
    return code, output, captured.err


def service() -> TenantService:
    return TenantService(DynamoTenantStore(resources.BILLING_TABLE.local_name))


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert err.startswith("billing-admin: error: ")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


def test_create_tenant_prints_the_tenant_and_an_admin_and_an_ingest_key(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme Inc", "--pii-deny", "email, phone"
    )

    assert (code, err) == (0, "")
    assert out["tenant"]["tenant_id"] == "acme"
    assert out["tenant"]["pii_policy"] == {"allow": None, "deny": ["email", "phone"]}
    assert sorted(key["scope"] for key in out["api_keys"]) == ["admin", "ingest"]
    for key in out["api_keys"]:
        principal = service().authenticate(key["raw_key"])
        assert principal is not None
        assert (principal.tenant_id, principal.key_id, principal.scope.value) == (
            "acme",
            key["key_id"],
            key["scope"],
        )


def test_create_tenant_with_allow_list_and_fixed_admin_key_from_the_environment(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_LOCAL_ADMIN_KEY", "local-admin-key-0123456789abcdefghij")

    code, out, _ = run(
        capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme", "--pii-allow", "tokens,region",
        "--admin-key-env", "BILLING_LOCAL_ADMIN_KEY",
    )  # fmt: skip

    assert code == 0
    assert out["tenant"]["pii_policy"]["allow"] == ["tokens", "region"]
    admin = next(key for key in out["api_keys"] if key["scope"] == "admin")
    assert admin["raw_key"] == "local-admin-key-0123456789abcdefghij"


def test_a_bad_fixed_admin_key_is_refused_before_the_tenant_is_created(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BILLING_LOCAL_ADMIN_KEY", "short")

    code, _, err = run(
        capsys,
        "create-tenant",
        "--tenant-id",
        "acme",
        "--name",
        "Acme",
        "--admin-key-env",
        "BILLING_LOCAL_ADMIN_KEY",
    )

    assert_one_line_error(code, err, "32 to 128 characters")
    with pytest.raises(TenantNotFound):
        service().get_tenant("acme")


def test_duplicate_tenant_is_one_line_on_stderr_and_exit_2(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")[0] == 0

    code, out, err = run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")

    assert out == ""
    assert_one_line_error(code, err, "tenant 'acme' already exists")


def test_key_lifecycle_create_list_revoke(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")

    code, created, _ = run(capsys, "create-key", "--tenant-id", "acme", "--scope", "ingest")
    assert code == 0
    key_id = created["api_key"]["key_id"]
    assert created["api_key"]["raw_key"].startswith("bk_ingest_")

    code, revoked, _ = run(capsys, "revoke-key", "--tenant-id", "acme", "--key-id", key_id)
    assert code == 0
    assert revoked["api_key"]["revoked_at"] is not None
    assert service().authenticate(created["api_key"]["raw_key"]) is None

    code, listed, _ = run(capsys, "list-keys", "--tenant-id", "acme")
    assert code == 0
    assert len(listed["api_keys"]) == 3
    assert all("raw_key" not in key for key in listed["api_keys"])
    assert [key["key_id"] for key in listed["api_keys"] if key["revoked_at"]] == [key_id]


def test_show_tenant_and_set_pii_policy(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")

    code, updated, _ = run(
        capsys, "set-pii-policy", "--tenant-id", "acme", "--allow", "tokens", "--deny", "ip"
    )
    assert code == 0
    assert updated["tenant"]["pii_policy"] == {"allow": ["tokens"], "deny": ["ip"]}

    code, shown, _ = run(capsys, "show-tenant", "--tenant-id", "acme")
    assert code == 0
    assert shown["tenant"]["pii_policy"] == {"allow": ["tokens"], "deny": ["ip"]}
    assert len(shown["api_keys"]) == 2


def test_text_output_is_key_value_lines(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")
    code, out, _ = run(capsys, "--output", "text", "show-tenant", "--tenant-id", "acme")
    assert code == 0
    assert "tenant.tenant_id: acme" in out.splitlines()


@pytest.mark.parametrize(
    "argv",
    [
        ["show-tenant", "--tenant-id", "ghost"],
        ["list-keys", "--tenant-id", "ghost"],
        ["create-key", "--tenant-id", "ghost", "--scope", "admin"],
        ["set-pii-policy", "--tenant-id", "ghost", "--deny", "email"],
    ],
)
def test_unknown_tenant_is_named_on_stderr(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert_one_line_error(code, err, "tenant 'ghost' not found")


def test_revoking_another_tenants_key_is_not_found(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")
    _, globex, _ = run(capsys, "create-tenant", "--tenant-id", "globex", "--name", "Globex")

    code, _, err = run(
        capsys, "revoke-key", "--tenant-id", "acme", "--key-id", globex["api_keys"][0]["key_id"]
    )

    assert_one_line_error(code, err, "not found for tenant 'acme'")


def test_bad_scope_is_a_usage_error_with_exit_2(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "create-key", "--tenant-id", "acme", "--scope", "root")
    assert code == 2
    assert "invalid choice: 'root'" in err
    assert "Traceback" not in err


def test_missing_table_is_reported(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--table", "no-such-table", "show-tenant", "--tenant-id", "acme")
    assert_one_line_error(code, err, "'no-such-table'")


def test_create_tenant_attaches_an_api_gateway_key_when_a_usage_plan_is_given(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    apigateway = boto3.client("apigateway")
    plan_id = apigateway.create_usage_plan(name="tenants")["id"]
    monkeypatch.setenv("BILLING_USAGE_PLAN_ID", plan_id)

    code, out, _ = run(capsys, "create-tenant", "--tenant-id", "acme", "--name", "Acme")

    assert code == 0
    assert out["usage_plan_id"] == plan_id
    plan_keys = apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"]
    assert [(k["name"], k["value"]) for k in plan_keys] == [("tenant-acme", out["tenant"]["usage_key"])]
    code, attached, _ = run(capsys, "attach-usage-plan", "--tenant-id", "acme")
    assert (code, attached["api_gateway_key_id"]) == (0, plan_keys[0]["id"])


def test_attach_usage_plan_without_a_plan_says_so(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "attach-usage-plan", "--tenant-id", "acme")
    assert_one_line_error(code, err, "--usage-plan-id")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_endpoint_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    code, _, err = run(capsys, "--endpoint-url", endpoint, "show-tenant", "--tenant-id", "acme")
    assert_one_line_error(code, err, "cannot reach", endpoint)


def test_missing_credentials_are_reported(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)

    code, _, err = run(capsys, "--region", "us-east-1", "list-keys", "--tenant-id", "a")
    assert_one_line_error(code, err, "credentials")

    # Against an explicit endpoint (the local runtime) no credentials are needed: moto takes any.
    code, _, err = run(
        capsys, "--endpoint-url", f"http://127.0.0.1:{_closed_port()}", "list-keys", "--tenant-id", "a"
    )
    assert_one_line_error(code, err, "reach")
