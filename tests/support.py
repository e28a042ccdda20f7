"""Builders for tests: API Gateway events derived from the samples in `events/`, handler invocation."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3

from billing.settings import get_settings
from local.lambda_context import new_context
from local.pump import SqsPump
from tests.conftest import load_event


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    tenant_id: str = "acme",
    scope: str | None = "admin",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """A REST API proxy event shaped like `events/api_post_events.json`, for any route and caller."""
    event = copy.deepcopy(load_event("api_post_events.json"))
    event["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.removeprefix("/v1/")}
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = "/prod" + path
    event["headers"].pop("Idempotency-Key", None)
    event["headers"].update(headers or {})
    event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    if scope is None:
        event["requestContext"].pop("authorizer", None)
    else:
        event["requestContext"]["authorizer"] = {
            "principalId": f"key_{tenant_id}",
            "tenant_id": tenant_id,
            "key_id": f"key_{tenant_id}",
            "scope": scope,
        }
    event["body"] = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
    return event


def call_api(event: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    from functions.api.handler import handler

    response = handler(event, new_context("api"))
    body = json.loads(response["body"]) if response.get("body") else {}
    headers = {**(response.get("headers") or {})}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(name, values[-1])
    return response["statusCode"], body, headers


def ingest_pump(retry_delay_seconds: int = 0) -> SqsPump:
    """The ingest queue → consumer function, driven synchronously with `poll_once()` / `drain()`."""
    from functions.ingest_consumer.handler import handler

    return SqsPump(
        boto3.client("sqs"),
        queue_url=get_settings().ingest_queue_url,
        consumer=lambda event: handler(event, new_context("ingest-consumer")),
        retry_delay_seconds=retry_delay_seconds,
        wait_seconds=0,
    )


def drain(pump: SqsPump, max_polls: int = 200) -> None:
    for _ in range(max_polls):
        if pump.poll_once() == 0 and pump.backlog() == 0:
            return
    raise AssertionError("the ingest queue did not drain")


def dlq_messages() -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    return sqs.receive_message(
        QueueUrl=get_settings().ingest_dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])
