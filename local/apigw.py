"""API Gateway's part of a request, played locally: proxy events, authorizer policy and cache, throttling.

Pure where it can be (event building, policy evaluation, token buckets take the time as an argument); the
HTTP server in `local.http_api` wires these to real sockets and to the in-process handlers.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from billing.resources import ThrottleSpec
from local.lambdas import LambdaTimeout

# API Gateway REST API limits and the shape of the local deployment.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
API_ID = "local"
STAGE = "prod"
RESOURCE = "/v1/{proxy+}"
RESOURCE_PREFIX = "/v1/"
OPENAPI_RESOURCE = "/v1/openapi.json"
DOCS_RESOURCE = "/docs"
PUBLIC_RESOURCES = (OPENAPI_RESOURCE, DOCS_RESOURCE)  # GET only, no key: the API describes itself

# Media types whose bodies API Gateway hands to Lambda as text; anything else goes base64-encoded, as it
# does for binary media types.
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")
_TEXT_SUFFIXES = ("+json", "+xml")
_FORWARDING_HEADERS = frozenset({"x-forwarded-for", "x-forwarded-proto"})


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as it arrived: `path` is still percent-encoded, `query` is the raw query string."""

    method: str
    path: str
    query: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        """The last value of a header (case-insensitive), as API Gateway's `headers` map holds it."""
        value = None
        for key, item in self.headers:
            if key.lower() == name.lower():
                value = item
        return value


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


# ---------------------------------------------------------------------------------------------------------
# Error responses in the API's error shape (what the CDK app's gateway responses are configured to return).


def error_response(
    status: int, code: str, message: str, *, headers: Iterable[tuple[str, str]] = (), error_type: str = ""
) -> HttpResponse:
    body = json.dumps({"error": {"code": code, "message": message, "details": []}}).encode()
    extra = [("Content-Type", "application/json"), *headers]
    if error_type:
        extra.append(("x-amzn-ErrorType", error_type))
    return HttpResponse(status=status, headers=tuple(extra), body=body)


# Status, code and message follow the gateway responses of the CDK app (infra/constructs/api.py).


def too_large() -> HttpResponse:
    return error_response(
        413, "payload_too_large", "Request body too large.", error_type="RequestTooLargeException"
    )


def unauthorized() -> HttpResponse:
    return error_response(
        401,
        "unauthorized",
        "Missing or invalid API key.",
        headers=[("WWW-Authenticate", "Bearer")],
        error_type="UnauthorizedException",
    )


def access_denied() -> HttpResponse:
    # The authorizer's policy does not allow the method (ACCESS_DENIED, mapped to 401 by the CDK app).
    return error_response(
        401,
        "unauthorized",
        "Invalid API key.",
        headers=[("WWW-Authenticate", "Bearer")],
        error_type="AccessDeniedException",
    )


def invalid_api_key() -> HttpResponse:
    # The method requires an API key and the authorizer named none (INVALID_API_KEY, 401 in the CDK app).
    return error_response(
        401,
        "unauthorized",
        "Invalid API key.",
        headers=[("WWW-Authenticate", "Bearer")],
        error_type="InvalidApiKeyException",
    )


def rate_limited(retry_after_seconds: int) -> HttpResponse:
    return error_response(
        429,
        "rate_limited",
        "Too many requests; retry later.",
        headers=[("Retry-After", str(retry_after_seconds))],
        error_type="TooManyRequestsException",
    )


def _server_error(status: int, error_type: str) -> HttpResponse:
    return error_response(
        status, "internal_error", "The service could not complete the request.", error_type=error_type
    )


def authorizer_failure() -> HttpResponse:
    # The authorizer raised something other than "Unauthorized", or answered junk.
    return _server_error(500, "AuthorizerConfigurationException")


def integration_failure() -> HttpResponse:
    # The Lambda raised, or returned something that is not a proxy response.
    return _server_error(502, "InternalServerErrorException")


def integration_timeout() -> HttpResponse:
    return _server_error(504, "IntegrationTimeoutException")


def not_found_route() -> HttpResponse:
    # No resource or method matches: API Gateway's MISSING_AUTHENTICATION_TOKEN, a 404 in the CDK app.
    return error_response(
        404, "not_found", "No such route.", error_type="MissingAuthenticationTokenException"
    )


# ---------------------------------------------------------------------------------------------------------
# Routing and the events handed to the functions.


def route_path(raw_path: str) -> str:
    """The decoded path used to match routes (`/v1/events/evt%201` → `/v1/events/evt 1`)."""
    return unquote(raw_path)


@dataclass(frozen=True)
class Route:
    """The API Gateway resource a request matched and what its method requires."""

    resource: str
    path_parameters: dict[str, str] | None
    authorized: bool  # TOKEN authorizer and API key required (usage plan)


def match_route(method: str, raw_path: str) -> Route | None:
    """The resources of the CDK app: GET /v1/openapi.json and GET /docs (open), ANY /v1/{proxy+}
    (authorizer + API key).

    An explicit resource wins over the greedy one, so other methods on the open resources match nothing.
    """
    path = route_path(raw_path)
    if path in PUBLIC_RESOURCES:
        return Route(path, None, authorized=False) if method.upper() == "GET" else None
    if path.startswith(RESOURCE_PREFIX) and len(path) > len(RESOURCE_PREFIX):
        return Route(RESOURCE, {"proxy": path[len(RESOURCE_PREFIX) :]}, authorized=True)
    return None


def method_arn(method: str, raw_path: str) -> str:
    return (
        f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{STAGE}/{method.upper()}/{raw_path.lstrip('/')}"
    )


def token_authorizer_event(token: str, method: str, raw_path: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn(method, raw_path)}


def is_text_body(content_type: str | None, body: bytes) -> bool:
    """Whether API Gateway passes the body as text (no binary media type matched) rather than base64."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    textual = not media or media.startswith(_TEXT_TYPES) or media.endswith(_TEXT_SUFFIXES)
    if not textual:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _multi(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)
    return multi


def build_proxy_event(
    request: HttpRequest,
    *,
    route: Route | None = None,
    authorizer: Mapping[str, Any] | None,
    request_id: str | None = None,
    now: datetime | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy event API Gateway builds for `request` (on its matched resource).

    As in AWS: `path` stays percent-encoded while path and query parameters are decoded; `headers` and
    `queryStringParameters` hold the last value of a repeated name and the `multiValue*` maps hold all of
    them; both query maps are null when there is no query string; `requestContext.authorizer` carries the
    authorizer's context (values as strings) plus `principalId`; `identity.apiKey` is the usage-plan key the
    authorizer named; API Gateway's forwarding headers are appended.
    """
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    received = [(k, v) for k, v in request.headers if k.lower() not in _FORWARDING_HEADERS]
    forwarded_for = ", ".join(filter(None, [request.header("x-forwarded-for"), request.source_ip]))
    all_headers = [*received, ("X-Forwarded-For", forwarded_for), ("X-Forwarded-Proto", "http")]
    headers = dict(all_headers)
    multi_headers = _multi(all_headers)
    query_pairs = parse_qsl(request.query, keep_blank_values=True)
    query = dict(query_pairs) or None
    multi_query = _multi(query_pairs) or None
    route = route or match_route(request.method, request.path) or Route(RESOURCE, None, authorized=True)
    if is_text_body(request.header("content-type"), request.body):
        body: str | None = request.body.decode("utf-8")
        encoded = False
    else:
        body = base64.b64encode(request.body).decode("ascii")
        encoded = True
    if not request.body:
        body, encoded = None, False
    context: dict[str, Any] = {
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "resourceId": "proxy",
        "resourcePath": route.resource,
        "httpMethod": request.method.upper(),
        "extendedRequestId": request_id,
        "requestId": request_id,
        "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "path": f"/{STAGE}{request.path}",
        "protocol": "HTTP/1.1",
        "stage": STAGE,
        "domainName": headers.get("Host", "127.0.0.1"),
        "domainPrefix": API_ID,
        "identity": {
            "sourceIp": request.source_ip,
            "userAgent": request.header("user-agent"),
            "accountId": None,
            "apiKey": api_key,
            "apiKeyId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "user": None,
            "userArn": None,
            "accessKey": None,
        },
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method.upper(),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": route.path_parameters,
        "stageVariables": None,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": encoded,
    }


def proxy_response(result: Any) -> HttpResponse:
    """Turn a Lambda proxy result into the HTTP response; a malformed result is API Gateway's 502."""
    if not isinstance(result, Mapping):
        return integration_failure()
    try:
        status = int(result.get("statusCode", 200))
    except (TypeError, ValueError):
        return integration_failure()
    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(value)) for value in values]
    multi_names = {name.lower() for name, _ in headers}
    headers += [
        (str(name), str(value))
        for name, value in (result.get("headers") or {}).items()
        if str(name).lower() not in multi_names
    ]
    raw_body = result.get("body")
    if raw_body is None:
        body = b""
    elif result.get("isBase64Encoded"):
        try:
            body = base64.b64decode(raw_body)
        except (ValueError, TypeError):
            return integration_failure()
    else:
        body = str(raw_body).encode("utf-8")
    return HttpResponse(status=status, headers=tuple(headers), body=body)


# ---------------------------------------------------------------------------------------------------------
# The TOKEN authorizer's answer: policy evaluation and the per-token cache.


@dataclass(frozen=True)
class AuthorizerResult:
    """What API Gateway keeps from a TOKEN authorizer's answer (and caches per token)."""

    principal_id: str
    policy: Mapping[str, Any]
    context: Mapping[str, str]
    usage_identifier_key: str | None

    @classmethod
    def from_response(cls, response: Any) -> AuthorizerResult:
        """Validate the authorizer's answer; ValueError where API Gateway would report a config error."""
        if not isinstance(response, Mapping):
            raise ValueError("the authorizer returned no object")
        principal = response.get("principalId")
        policy = response.get("policyDocument")
        if not isinstance(principal, str) or not isinstance(policy, Mapping):
            raise ValueError("the authorizer response needs principalId and policyDocument")
        raw_context = response.get("context") or {}
        if not isinstance(raw_context, Mapping):
            raise ValueError("the authorizer context must be an object")
        context: dict[str, str] = {}
        for key, value in raw_context.items():
            # API Gateway allows only string, number and boolean context values and hands them on as strings.
            if isinstance(value, bool):
                context[str(key)] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                context[str(key)] = str(value)
            else:
                raise ValueError(f"authorizer context value {key!r} is not a string, number or boolean")
        usage_key = response.get("usageIdentifierKey")
        return cls(
            principal_id=principal,
            policy=policy,
            context=context,
            usage_identifier_key=str(usage_key) if usage_key is not None else None,
        )

    def request_context(self) -> dict[str, Any]:
        """`requestContext.authorizer` of the proxy event."""
        return {**self.context, "principalId": self.principal_id, "integrationLatency": 0}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _arn_matches(pattern: str, arn: str) -> bool:
    # IAM resource wildcards: `*` any run of characters (slashes included), `?` one character.
    return fnmatch.fnmatchcase(arn, pattern)


def policy_allows(policy: Mapping[str, Any], arn: str) -> bool:
    """IAM evaluation of an authorizer policy for `execute-api:Invoke` on `arn`: an explicit Deny wins,
    otherwise an Allow must match."""
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        if not isinstance(statement, Mapping):
            continue
        actions = [str(a) for a in _as_list(statement.get("Action"))]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) or a == "*" for a in actions):
            continue
        if not any(_arn_matches(str(r), arn) for r in _as_list(statement.get("Resource"))):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


class AuthorizerCache:
    """API Gateway's authorizer cache: the answer for a token is reused for `ttl_seconds` (0 disables).

    As in AWS, the cached policy is evaluated against each new method ARN, so a policy that only allows
    the first route it was asked about denies the others until the entry expires.
    """

    def __init__(self, ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, AuthorizerResult]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> AuthorizerResult | None:
        if self.ttl_seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            expires, result = entry
            if self._clock() >= expires:
                del self._entries[token]
                return None
            return result

    def put(self, token: str, result: AuthorizerResult) -> None:
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[token] = (now + self.ttl_seconds, result)


# ---------------------------------------------------------------------------------------------------------
# Usage-plan throttling: one token bucket per usage identifier key.


@dataclass
class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; each request takes one."""

    rate: float
    burst: int
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def take(self, now: float) -> float:
        """Take a token at time `now`: 0.0 when granted, else the seconds until one is available."""
        if self.updated is not None and now > self.updated:
            self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (1.0 - self.tokens) / self.rate


def retry_after_header(wait_seconds: float) -> int:
    """`Retry-After` is whole seconds; never 0, so a client that honours it does back off."""
    if math.isinf(wait_seconds):
        return 60
    return max(1, math.ceil(wait_seconds))


class TenantThrottle:
    """Token buckets keyed by the authorizer's usage identifier key (the tenant's usage-plan key in AWS)."""

    def __init__(self, spec: ThrottleSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec = spec
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(
                    rate=self.spec.rate_per_second, burst=self.spec.burst
                )
            return bucket.take(self._clock())


# ---------------------------------------------------------------------------------------------------------
# The gateway: API Gateway's steps in order, then the integration.

LambdaCall = Callable[[dict[str, Any]], Any]


class LocalApiGateway:
    """Plays API Gateway for one request: size limit, TOKEN authorizer (cached), usage-plan throttle, then
    the api function through the Lambda proxy integration.

    `authorizer` and `api` take an event and return the function's result (the caller supplies the Lambda
    context); `authorizer` signals a rejected token by raising `Exception("Unauthorized")`, as in AWS.
    """

    def __init__(
        self,
        *,
        authorizer: LambdaCall,
        api: LambdaCall,
        throttle: TenantThrottle,
        cache: AuthorizerCache,
        on_error: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        self._authorizer = authorizer
        self._api = api
        self._throttle = throttle
        self._cache = cache
        self._on_error = on_error or (lambda _where, _exc: None)

    def handle(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        response = self._handle(request, request_id)
        return HttpResponse(
            status=response.status,
            headers=(*response.headers, ("x-amzn-RequestId", request_id)),
            body=response.body,
        )

    def _handle(self, request: HttpRequest, request_id: str) -> HttpResponse:
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return too_large()
        route = match_route(request.method, request.path)
        if route is None:
            return not_found_route()
        authorizer_context: dict[str, Any] | None = None
        usage_key: str | None = None
        if route.authorized:
            outcome = self._authorize(request)
            if isinstance(outcome, HttpResponse):
                return outcome
            if not outcome.usage_identifier_key:
                return invalid_api_key()
            wait = self._throttle.take(outcome.usage_identifier_key)
            if wait > 0:
                return rate_limited(retry_after_header(wait))
            authorizer_context = outcome.request_context()
            usage_key = outcome.usage_identifier_key
        event = build_proxy_event(
            request, route=route, authorizer=authorizer_context, request_id=request_id, api_key=usage_key
        )
        try:
            result = self._api(event)
        except LambdaTimeout as exc:
            self._on_error("api", exc)
            return integration_timeout()
        except Exception as exc:
            self._on_error("api", exc)
            return integration_failure()
        return proxy_response(result)

    def _authorize(self, request: HttpRequest) -> AuthorizerResult | HttpResponse:
        token = request.header("authorization")
        if not token:
            # The identity source is missing: API Gateway answers 401 without calling the authorizer.
            return unauthorized()
        result = self._cache.get(token)
        if result is None:
            try:
                raw = self._authorizer(token_authorizer_event(token, request.method, request.path))
            except Exception as exc:
                if str(exc) == "Unauthorized":
                    return unauthorized()
                self._on_error("authorizer", exc)
                return authorizer_failure()
            try:
                result = AuthorizerResult.from_response(raw)
            except ValueError as exc:
                self._on_error("authorizer", exc)
                return authorizer_failure()
            self._cache.put(token, result)
        if not policy_allows(result.policy, method_arn(request.method, request.path)):
            return access_denied()
        return result
