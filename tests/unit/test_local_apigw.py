"""The local runtime's API Gateway: proxy events, authorizer policy and cache, throttling, gateway steps."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from billing.resources import ThrottleSpec
from local.apigw import (
    MAX_PAYLOAD_BYTES,
    AuthorizerCache,
    AuthorizerResult,
    HttpRequest,
    LocalApiGateway,
    TenantThrottle,
    TokenBucket,
    build_proxy_event,
    method_arn,
    policy_allows,
    proxy_response,
    retry_after_header,
)
from local.lambdas import LambdaTimeout

ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Action": "execute-api:Invoke",
            "Effect": "Allow",
            "Resource": ["arn:aws:execute-api:us-east-1:123456789012:local/prod/*/*"],
        }
    ],
}


def a_request(**overrides: Any) -> HttpRequest:
    values: dict[str, Any] = {
        "method": "POST",
        "path": "/v1/events",
        "headers": (("Host", "127.0.0.1:8080"), ("Content-Type", "application/json")),
        "body": b'{"id": "evt_1"}',
    }
    values.update(overrides)
    return HttpRequest(**values)


def an_authorizer_answer(**overrides: Any) -> dict[str, Any]:
    answer = {
        "principalId": "key_abc",
        "policyDocument": ALLOW_ALL,
        "context": {"tenant_id": "acme", "key_id": "key_abc", "scope": "ingest"},
        "usageIdentifierKey": "usage-acme",
    }
    answer.update(overrides)
    return answer


# ---- the proxy event -------------------------------------------------------------------------------------


def test_proxy_event_has_the_rest_api_shape_for_the_greedy_resource() -> None:
    now = datetime(2026, 3, 4, 10, 0, 0, tzinfo=UTC)
    event = build_proxy_event(
        a_request(method="GET", path="/v1/events/evt%201", query="customer_id=cus_42", body=b""),
        authorizer={"tenant_id": "acme", "principalId": "key_abc"},
        request_id="req-1",
        now=now,
    )

    assert event["resource"] == "/v1/{proxy+}"
    assert event["path"] == "/v1/events/evt%201"  # REST APIs keep the path percent-encoded
    assert event["pathParameters"] == {"proxy": "events/evt 1"}  # ...and decode the parameters
    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"customer_id": "cus_42"}
    assert event["multiValueQueryStringParameters"] == {"customer_id": ["cus_42"]}
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == "req-1"
    assert context["stage"] == "prod"
    assert context["resourcePath"] == "/v1/{proxy+}"
    assert context["httpMethod"] == "GET"
    assert context["requestTimeEpoch"] == int(now.timestamp() * 1000)
    assert context["requestTime"] == "04/Mar/2026:10:00:00 +0000"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["authorizer"] == {"tenant_id": "acme", "principalId": "key_abc"}


def test_repeated_headers_and_query_keys_keep_the_last_value_single_and_all_values_multi() -> None:
    event = build_proxy_event(
        a_request(headers=(("X-Tag", "a"), ("X-Tag", "b")), query="t=1&t=2&empty="), authorizer=None
    )

    assert event["headers"]["X-Tag"] == "b"
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["multiValueHeaders"]["X-Tag"] == ["a", "b"]
    assert event["queryStringParameters"] == {"t": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"t": ["1", "2"], "empty": [""]}


def test_the_openapi_document_has_its_own_resource_with_no_authorizer_and_no_path_parameters() -> None:
    event = build_proxy_event(a_request(method="GET", path="/v1/openapi.json", body=b""), authorizer=None)

    assert event["resource"] == "/v1/openapi.json"
    assert event["requestContext"]["resourcePath"] == "/v1/openapi.json"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert "authorizer" not in event["requestContext"]


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/cloudevents-batch+json", "text/plain; charset=utf-8"]
)
def test_text_bodies_are_passed_as_text(content_type: str) -> None:
    event = build_proxy_event(
        a_request(headers=(("Content-Type", content_type),), body='{"é": 1}'.encode()), authorizer=None
    )

    assert event["body"] == '{"é": 1}'
    assert event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body"), [("application/octet-stream", b"\x00\x01"), ("application/json", b"\xff\xfe")]
)
def test_binary_bodies_are_base64_encoded(content_type: str, body: bytes) -> None:
    event = build_proxy_event(
        a_request(headers=(("Content-Type", content_type),), body=body), authorizer=None
    )

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


def test_method_arn_names_the_local_api_stage_method_and_path() -> None:
    assert (
        method_arn("post", "/v1/events")
        == "arn:aws:execute-api:us-east-1:123456789012:local/prod/POST/v1/events"
    )


# ---- the integration response ----------------------------------------------------------------------------


def test_proxy_response_merges_headers_and_decodes_base64_bodies() -> None:
    response = proxy_response(
        {
            "statusCode": 202,
            "headers": {"Content-Type": "application/json", "X-One": "1"},
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": base64.b64encode(b"hello").decode(),
            "isBase64Encoded": True,
        }
    )

    assert response.status == 202
    assert ("Set-Cookie", "a=1") in response.headers
    assert ("Set-Cookie", "b=2") in response.headers
    assert ("X-One", "1") in response.headers
    assert response.body == b"hello"


@pytest.mark.parametrize("result", [None, "oops", {"statusCode": "abc"}])
def test_a_result_that_is_not_a_proxy_response_is_a_502(result: Any) -> None:
    assert proxy_response(result).status == 502


# ---- authorizer policy and cache -------------------------------------------------------------------------


def test_an_allow_statement_with_wildcards_grants_every_route_of_the_stage() -> None:
    assert policy_allows(ALLOW_ALL, method_arn("GET", "/v1/events/evt_1"))
    assert not policy_allows(ALLOW_ALL, "arn:aws:execute-api:us-east-1:123456789012:other/prod/GET/v1/x")


def test_an_explicit_deny_wins_over_an_allow() -> None:
    policy = {
        "Statement": [
            *ALLOW_ALL["Statement"],
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": method_arn("GET", "/v1/events/x")},
        ]
    }

    assert not policy_allows(policy, method_arn("GET", "/v1/events/x"))
    assert policy_allows(policy, method_arn("POST", "/v1/events"))


def test_a_policy_without_a_matching_allow_denies() -> None:
    policy = {
        "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": method_arn("POST", "/v1/events")}
        ]
    }

    assert not policy_allows(policy, method_arn("GET", "/v1/events/x"))
    assert not policy_allows({}, method_arn("POST", "/v1/events"))


def test_authorizer_context_values_reach_the_function_as_strings() -> None:
    result = AuthorizerResult.from_response(an_authorizer_answer(context={"n": 3, "flag": True, "s": "x"}))

    assert result.request_context()["n"] == "3"
    assert result.request_context()["flag"] == "true"
    assert result.request_context()["principalId"] == "key_abc"


@pytest.mark.parametrize(
    "answer", [None, {"principalId": "x"}, an_authorizer_answer(context={"nested": {"a": 1}})]
)
def test_a_malformed_authorizer_answer_is_rejected(answer: Any) -> None:
    with pytest.raises(ValueError, match="authorizer"):
        AuthorizerResult.from_response(answer)


def test_the_authorizer_cache_keeps_an_answer_for_its_ttl() -> None:
    now = [100.0]
    cache = AuthorizerCache(ttl_seconds=60, clock=lambda: now[0])
    result = AuthorizerResult.from_response(an_authorizer_answer())
    cache.put("Bearer k", result)

    now[0] = 159.9
    assert cache.get("Bearer k") is result
    now[0] = 160.0
    assert cache.get("Bearer k") is None


def test_a_zero_ttl_disables_the_authorizer_cache() -> None:
    cache = AuthorizerCache(ttl_seconds=0)
    cache.put("Bearer k", AuthorizerResult.from_response(an_authorizer_answer()))

    assert cache.get("Bearer k") is None


# ---- throttling ------------------------------------------------------------------------------------------


def test_a_token_bucket_grants_the_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3)

    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0.0  # one token refilled after 1/rate seconds
    assert bucket.take(0.1) > 0


def test_a_token_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=2)
    bucket.take(0.0)

    granted = [bucket.take(1000.0) for _ in range(3)]

    assert granted[:2] == [0.0, 0.0]
    assert granted[2] > 0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == 1
    assert retry_after_header(1.2) == 2
    assert retry_after_header(float("inf")) == 60


def test_tenants_are_throttled_independently() -> None:
    throttle = TenantThrottle(ThrottleSpec(rate_per_second=1.0, burst=1), clock=lambda: 0.0)

    assert throttle.take("acme") == 0.0
    assert throttle.take("acme") > 0
    assert throttle.take("globex") == 0.0


# ---- the gateway's steps ---------------------------------------------------------------------------------


GENEROUS = ThrottleSpec(rate_per_second=100.0, burst=200)


class FakeFunctions:
    def __init__(self, authorizer_answer: Any = None, authorizer_error: Exception | None = None) -> None:
        self.authorizer_answer = (
            authorizer_answer if authorizer_answer is not None else an_authorizer_answer()
        )
        self.authorizer_error = authorizer_error
        self.authorizer_events: list[dict[str, Any]] = []
        self.api_events: list[dict[str, Any]] = []
        self.api_error: Exception | None = None

    def authorizer(self, event: dict[str, Any]) -> Any:
        self.authorizer_events.append(event)
        if self.authorizer_error is not None:
            raise self.authorizer_error
        return self.authorizer_answer

    def api(self, event: dict[str, Any]) -> Any:
        self.api_events.append(event)
        if self.api_error is not None:
            raise self.api_error
        return {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": '{"accepted": 1}'}


def a_gateway(
    functions: FakeFunctions, *, throttle: ThrottleSpec = GENEROUS, ttl: float = 60
) -> LocalApiGateway:
    return LocalApiGateway(
        authorizer=functions.authorizer,
        api=functions.api,
        throttle=TenantThrottle(throttle, clock=lambda: 0.0),
        cache=AuthorizerCache(ttl),
    )


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


def test_an_authorized_request_reaches_the_api_function_with_the_authorizer_context() -> None:
    functions = FakeFunctions()
    request = a_request(headers=(("Authorization", "Bearer k"), ("Content-Type", "application/json")))

    response = a_gateway(functions).handle(request)

    assert response.status == 202
    assert response.body == b'{"accepted": 1}'
    assert functions.authorizer_events == [
        {
            "type": "TOKEN",
            "authorizationToken": "Bearer k",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:local/prod/POST/v1/events",
        }
    ]
    authorizer = functions.api_events[0]["requestContext"]["authorizer"]
    assert authorizer["tenant_id"] == "acme"
    assert authorizer["scope"] == "ingest"
    assert authorizer["principalId"] == "key_abc"
    assert functions.api_events[0]["requestContext"]["identity"]["apiKey"] == "usage-acme"


def test_a_request_without_authorization_header_is_401_and_the_authorizer_is_not_called() -> None:
    functions = FakeFunctions()

    response = a_gateway(functions).handle(a_request())

    assert response.status == 401
    assert error_code(response.body) == "unauthorized"
    assert dict(response.headers)["WWW-Authenticate"] == "Bearer"
    assert functions.authorizer_events == []
    assert functions.api_events == []


def test_an_unauthorized_token_is_401() -> None:
    functions = FakeFunctions(authorizer_error=Exception("Unauthorized"))

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer bad"),)))

    assert response.status == 401
    assert json.loads(response.body)["error"]["details"] == []
    assert functions.api_events == []


def test_an_authorizer_crash_is_a_500_not_a_401() -> None:
    functions = FakeFunctions(authorizer_error=RuntimeError("table missing"))

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert response.status == 500
    assert error_code(response.body) == "internal_error"


def test_a_deny_policy_is_401_as_the_cdk_gateway_responses_map_access_denied() -> None:
    deny = {"Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "*"}]}
    functions = FakeFunctions(authorizer_answer=an_authorizer_answer(policyDocument=deny))

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert response.status == 401
    assert error_code(response.body) == "unauthorized"
    assert functions.api_events == []


def test_an_authorizer_answer_without_usage_identifier_key_is_401_since_the_method_requires_a_key() -> None:
    functions = FakeFunctions(authorizer_answer=an_authorizer_answer(usageIdentifierKey=None))

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert response.status == 401
    assert functions.api_events == []


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/"), ("GET", "/other"), ("POST", "/v1/openapi.json")]
)
def test_a_request_matching_no_resource_is_404_without_calling_anything(method: str, path: str) -> None:
    functions = FakeFunctions()

    response = a_gateway(functions).handle(
        a_request(method=method, path=path, headers=(("Authorization", "Bearer k"),))
    )

    assert response.status == 404
    assert error_code(response.body) == "not_found"
    assert functions.authorizer_events == []


def test_the_openapi_document_needs_no_key() -> None:
    functions = FakeFunctions()

    response = a_gateway(functions).handle(a_request(method="GET", path="/v1/openapi.json", body=b""))

    assert response.status == 202
    assert functions.authorizer_events == []


def test_a_payload_over_10_mb_is_413_before_anything_runs() -> None:
    functions = FakeFunctions()
    request = a_request(headers=(("Authorization", "Bearer k"),), body=b"x" * (MAX_PAYLOAD_BYTES + 1))

    response = a_gateway(functions).handle(request)

    assert response.status == 413
    assert error_code(response.body) == "payload_too_large"
    assert functions.authorizer_events == []


def test_the_authorizer_answer_is_cached_per_token() -> None:
    functions = FakeFunctions()
    gateway = a_gateway(functions)
    headers = (("Authorization", "Bearer k"),)

    gateway.handle(a_request(headers=headers))
    gateway.handle(a_request(method="GET", path="/v1/events/evt_1", headers=headers, body=b""))

    assert len(functions.authorizer_events) == 1
    assert len(functions.api_events) == 2


def test_with_the_cache_disabled_every_request_calls_the_authorizer() -> None:
    functions = FakeFunctions()
    gateway = a_gateway(functions, ttl=0)

    for _ in range(3):
        gateway.handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert len(functions.authorizer_events) == 3


def test_a_tenant_over_its_burst_gets_429_with_retry_after() -> None:
    functions = FakeFunctions()
    gateway = a_gateway(functions, throttle=ThrottleSpec(rate_per_second=2.0, burst=2))
    request = a_request(headers=(("Authorization", "Bearer k"),))

    statuses = [gateway.handle(request).status for _ in range(2)]
    limited = gateway.handle(request)

    assert statuses == [202, 202]
    assert limited.status == 429
    assert error_code(limited.body) == "rate_limited"
    assert dict(limited.headers)["Retry-After"] == "1"
    assert len(functions.api_events) == 2


def test_an_api_function_crash_is_a_502() -> None:
    functions = FakeFunctions()
    functions.api_error = RuntimeError("boom")

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert response.status == 502
    assert error_code(response.body) == "internal_error"


def test_every_response_carries_a_request_id() -> None:
    response = a_gateway(FakeFunctions()).handle(a_request())

    assert dict(response.headers)["x-amzn-RequestId"]


def test_an_api_function_timeout_is_a_504() -> None:
    functions = FakeFunctions()
    functions.api_error = LambdaTimeout("billing-api", 29)

    response = a_gateway(functions).handle(a_request(headers=(("Authorization", "Bearer k"),)))

    assert response.status == 504
    assert error_code(response.body) == "internal_error"
