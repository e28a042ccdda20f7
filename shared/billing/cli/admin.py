"""`billing-admin`: operator commands for tenants and their API keys.

Examples (against the local runtime's moto):
  billing-admin --endpoint-url http://127.0.0.1:4566 create-tenant --tenant-id acme --name "Acme Inc"
  billing-admin create-key --tenant-id acme --scope ingest
  billing-admin revoke-key --tenant-id acme --key-id key_0123456789ab
  billing-admin list-keys --tenant-id acme
  billing-admin set-pii-policy --tenant-id acme --deny email,phone
  billing-admin show-tenant --tenant-id acme

Output is JSON on stdout (`--output text` for key: value lines). Failures print one line on stderr and
exit with status 2; raw API keys appear only in the output of the command that issues them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
)

from billing import resources
from billing.adapters.tenant_store import ApiGatewayUsagePlans, DynamoTenantStore
from billing.domain.api_keys import InvalidApiKey, validate_raw_key
from billing.domain.tenants import PiiPolicy, Scope
from billing.services.tenants import TenantError, TenantService

EXIT_OK = 0
EXIT_ERROR = 2
USAGE_PLAN_ENV = "BILLING_USAGE_PLAN_ID"
_SCOPES = [scope.value for scope in Scope]


class CliError(Exception):
    """A failure to report as one line on stderr."""


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-admin", description="Manage billing tenants and API keys.")
    parser.add_argument(
        "--endpoint-url", help="AWS endpoint, e.g. http://127.0.0.1:4566 for the local runtime"
    )
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE or the default chain)")
    parser.add_argument(
        "--table",
        default=os.environ.get(resources.BILLING_TABLE.env_var) or resources.BILLING_TABLE.local_name,
        help=f"billing table (default: ${resources.BILLING_TABLE.env_var} or "
        f"{resources.BILLING_TABLE.local_name})",
    )
    parser.add_argument(
        "--usage-plan-id",
        default=os.environ.get(USAGE_PLAN_ENV) or None,
        help=f"API Gateway usage plan new tenants' keys join (default: ${USAGE_PLAN_ENV}; none: skip)",
    )
    parser.add_argument("--output", choices=["json", "text"], default="json")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser("create-tenant", help="create a tenant with one admin and one ingest key")
    create.add_argument("--tenant-id", required=True)
    create.add_argument("--name", required=True)
    create.add_argument(
        "--pii-allow", type=_csv, help="comma-separated property keys to keep (all others dropped)"
    )
    create.add_argument("--pii-deny", type=_csv, default=(), help="comma-separated property keys to drop")
    create.add_argument(
        "--admin-key-env", metavar="VAR", help="fix the admin key to the value of this environment variable"
    )

    key = commands.add_parser("create-key", help="issue an API key (shown once)")
    key.add_argument("--tenant-id", required=True)
    key.add_argument("--scope", required=True, choices=_SCOPES)
    key.add_argument("--key-env", metavar="VAR", help="fix the key to the value of this environment variable")

    revoke = commands.add_parser("revoke-key", help="revoke an API key by its id")
    revoke.add_argument("--tenant-id", required=True)
    revoke.add_argument("--key-id", required=True)

    listing = commands.add_parser("list-keys", help="list a tenant's API keys (ids, scopes, revocation)")
    listing.add_argument("--tenant-id", required=True)

    pii = commands.add_parser("set-pii-policy", help="replace a tenant's PII policy")
    pii.add_argument("--tenant-id", required=True)
    pii.add_argument("--allow", type=_csv, help="comma-separated property keys to keep (all others dropped)")
    pii.add_argument("--deny", type=_csv, default=(), help="comma-separated property keys to drop")

    show = commands.add_parser("show-tenant", help="show a tenant and its API keys")
    show.add_argument("--tenant-id", required=True)

    attach = commands.add_parser("attach-usage-plan", help="(re)attach a tenant's key to --usage-plan-id")
    attach.add_argument("--tenant-id", required=True)
    return parser


def build_service(args: argparse.Namespace) -> TenantService:
    # A session of our own: credentials are resolved for this run, not reused from boto3's default session.
    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    if args.endpoint_url and session.get_credentials() is None:
        # An explicit endpoint with no credentials at all is the local runtime (moto takes any): say so.
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - a placeholder moto accepts, not a secret
            region_name=args.region,
        )
    region = session.region_name or ("us-east-1" if args.endpoint_url else None)  # moto needs *a* region
    config = Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=20)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url, region_name=region, config=config)

    store = DynamoTenantStore(args.table, client=client("dynamodb"))
    usage_plans = (
        ApiGatewayUsagePlans(args.usage_plan_id, client=client("apigateway")) if args.usage_plan_id else None
    )
    return TenantService(store, api_gateway=usage_plans)


def _key_from_env(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise CliError(f"environment variable {var} is not set (it should hold the API key to issue)")
    return value


def _run(args: argparse.Namespace) -> dict[str, Any]:
    service = build_service(args)
    if args.command == "create-tenant":
        admin_key = _key_from_env(args.admin_key_env)
        # Validate before creating anything, so a bad fixed key leaves no half-made tenant behind.
        if admin_key is not None:
            validate_raw_key(admin_key, Scope.ADMIN)
        policy = PiiPolicy(allow=args.pii_allow, deny=args.pii_deny)
        tenant = service.create_tenant(args.tenant_id, args.name, policy)
        keys = [
            service.issue_api_key(tenant.tenant_id, Scope.ADMIN, admin_key),
            service.issue_api_key(tenant.tenant_id, Scope.INGEST),
        ]
        return {
            "tenant": tenant.model_dump(mode="json"),
            "usage_plan_id": args.usage_plan_id,
            "api_keys": [_issued(key) for key in keys],
            "note": "store the api_keys now: they are not shown again",
        }
    if args.command == "create-key":
        issued = service.issue_api_key(args.tenant_id, args.scope, _key_from_env(args.key_env))
        return {"api_key": _issued(issued), "note": "store the key now: it is not shown again"}
    if args.command == "revoke-key":
        return {"api_key": service.revoke_api_key(args.tenant_id, args.key_id).model_dump(mode="json")}
    if args.command == "list-keys":
        return {"api_keys": [key.model_dump(mode="json") for key in service.list_api_keys(args.tenant_id)]}
    if args.command == "set-pii-policy":
        tenant = service.set_pii_policy(args.tenant_id, PiiPolicy(allow=args.allow, deny=args.deny))
        return {"tenant": tenant.model_dump(mode="json")}
    if args.command == "show-tenant":
        tenant = service.get_tenant(args.tenant_id)
        records = service.list_api_keys(args.tenant_id)
        return {
            "tenant": tenant.model_dump(mode="json"),
            "api_keys": [record.model_dump(mode="json") for record in records],
        }
    if args.command == "attach-usage-plan":
        if not args.usage_plan_id:
            raise CliError(f"no usage plan: pass --usage-plan-id or set {USAGE_PLAN_ENV}")
        return {"tenant_id": args.tenant_id, "api_gateway_key_id": service.attach_usage_plan(args.tenant_id)}
    raise CliError(f"unknown command {args.command!r}")  # argparse makes this unreachable


def _issued(key: Any) -> dict[str, str]:
    return {
        "key_id": key.key_id,
        "scope": key.scope.value,
        "tenant_id": key.tenant_id,
        "created_at": key.created_at,
        "raw_key": key.raw_key,
    }


def _describe_aws_error(exc: Exception, args: argparse.Namespace) -> str:
    where = args.endpoint_url or "AWS"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return (
            "AWS credentials not found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(any value works against the local runtime)"
        )
    if isinstance(exc, ProfileNotFound):
        return f"AWS profile {args.profile!r} not found"
    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region or set AWS_REGION"
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError | ReadTimeoutError):
        return f"cannot reach {where}: {exc}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        if code == "ResourceNotFoundException":
            detail = error.get("Message", "")
            return f"{where}: table {args.table!r} or another resource does not exist ({detail})"
        if code in {"UnrecognizedClientException", "InvalidClientTokenId", "ExpiredTokenException",
                    "InvalidSignatureException", "AccessDeniedException"}:  # fmt: skip
            return f"{where} rejected the credentials: {code}: {error.get('Message', '')}"
        return f"{where} answered {code}: {error.get('Message', '')}"
    return f"AWS call failed: {exc}"


def _print(result: dict[str, Any], output: str) -> None:
    if output == "json":
        print(json.dumps(result, indent=2, sort_keys=False))
        return
    for line in _text_lines(result):
        print(line)


def _text_lines(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [line for key, item in value.items() for line in _text_lines(item, f"{prefix}{key}.")]
    if isinstance(value, list):
        return [line for i, item in enumerate(value) for line in _text_lines(item, f"{prefix}{i}.")]
    return [f"{prefix.rstrip('.')}: {'' if value is None else value}"]


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage and the problem (or the help)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    try:
        result = _run(args)
    except (TenantError, InvalidApiKey, CliError) as exc:
        print(f"billing-admin: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (BotoCoreError, ClientError) as exc:
        print(f"billing-admin: error: {_describe_aws_error(exc, args)}", file=sys.stderr)
        return EXIT_ERROR
    _print(result, args.output)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
