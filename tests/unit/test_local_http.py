"""The local API's HTTP listener: what never reaches the gateway still answers in the API's error shape."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from billing.resources import ThrottleSpec
from local.apigw import AuthorizerCache, LocalApiGateway, TenantThrottle
from local.http_api import GATEWAY_METHODS, LocalHttpApi


class StubFunctions:
    def __init__(self) -> None:
        self.api_events: list[dict[str, Any]] = []

    def authorizer(self, event: dict[str, Any]) -> Any:
        raise Exception("Unauthorized")

    def api(self, event: dict[str, Any]) -> Any:
        self.api_events.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": '{"ok": true}'}


@pytest.fixture(scope="module")
def shared_functions() -> StubFunctions:
    return StubFunctions()


@pytest.fixture
def functions(shared_functions: StubFunctions) -> StubFunctions:
    shared_functions.api_events.clear()
    return shared_functions


# One server for the module: stopping one takes up to serve_forever's 0.5 s poll interval.
@pytest.fixture(scope="module")
def server(shared_functions: StubFunctions) -> Iterator[LocalHttpApi]:
    functions = shared_functions
    gateway = LocalApiGateway(
        authorizer=functions.authorizer,
        api=functions.api,
        throttle=TenantThrottle(ThrottleSpec(rate_per_second=100.0, burst=200), clock=lambda: 0.0),
        cache=AuthorizerCache(60),
    )
    api = LocalHttpApi(gateway, port=0)
    api.start()
    yield api
    api.stop()


def connect(server: LocalHttpApi) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=5)


def read_response(sock: socket.socket, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
    """One response off the connection (http.client refuses anything that is not HTTP/1.x)."""
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    return response, response.read()


def exchange(server: LocalHttpApi, raw: bytes, method: str = "GET") -> tuple[http.client.HTTPResponse, bytes]:
    with connect(server) as sock:
        sock.sendall(raw)
        return read_response(sock, method)


def assert_error_shape(response: http.client.HTTPResponse, body: bytes, code: str) -> None:
    assert response.getheader("Content-Type") == "application/json"
    assert int(response.getheader("Content-Length") or -1) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["details"] == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "FOO", "get", "Post"])
def test_a_method_api_gateway_does_not_have_is_a_json_405_and_never_reaches_the_function(
    server: LocalHttpApi, functions: StubFunctions, method: str
) -> None:
    response, body = exchange(server, f"{method} /v1/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())

    assert response.status == 405
    assert_error_shape(response, body, "method_not_allowed")
    assert response.getheader("Allow") == ", ".join(GATEWAY_METHODS)
    assert functions.api_events == []


def test_the_body_of_a_refused_method_is_read_so_the_connection_serves_the_next_request(
    server: LocalHttpApi, functions: StubFunctions
) -> None:
    with connect(server) as sock:
        sock.sendall(b"PROPFIND /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        refused, _ = read_response(sock)
        sock.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        served, body = read_response(sock)

    assert refused.status == 405
    assert served.status == 200
    assert body == b'{"ok": true}'
    assert [event["httpMethod"] for event in functions.api_events] == ["GET"]


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"NONSENSE\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/events HTTP/1.1 extra\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/events HTTX/1.1\r\n\r\n", 400, "malformed_request"),
        (b"GET /v1/openapi.json\r\n\r\n", 400, "malformed_request"),  # HTTP/0.9: no version
        (b"GET /v1/events HTTP/2.0\r\n\r\n", 505, "http_version_not_supported"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414, "uri_too_long"),
        (b"GET /v1/events HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431, "headers_too_large"),
        (
            b"GET /v1/events HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
            431,
            "headers_too_large",
        ),
    ],
    ids=[
        "one-word",
        "four-words",
        "bad-version",
        "http-0.9",
        "http-2",
        "uri-too-long",
        "long-header",
        "many-headers",
    ],
)
def test_a_request_the_parser_rejects_is_answered_in_the_json_error_shape_and_the_connection_closed(
    server: LocalHttpApi, functions: StubFunctions, raw: bytes, status: int, code: str
) -> None:
    response, body = exchange(server, raw)

    assert response.status == status
    assert_error_shape(response, body, code)
    assert response.getheader("Connection") == "close"
    assert functions.api_events == []


def test_a_head_request_the_parser_rejects_gets_the_headers_without_a_body(server: LocalHttpApi) -> None:
    with connect(server) as sock:
        sock.sendall(b"HEAD /v1/events HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):
            received += chunk

    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert b"Content-Type: application/json" in head
    assert body == b""


def test_the_methods_of_the_gateway_still_reach_it(server: LocalHttpApi, functions: StubFunctions) -> None:
    response, body = exchange(server, b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
    unrouted, unrouted_body = exchange(server, b"DELETE /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")

    assert (response.status, body) == (200, b'{"ok": true}')
    assert (
        unrouted.status == 404
    )  # a real method with no resource: the gateway's MISSING_AUTHENTICATION_TOKEN
    assert_error_shape(unrouted, unrouted_body, "not_found")
