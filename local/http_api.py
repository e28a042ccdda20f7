"""The HTTP listener of the local API: real sockets in, `LocalApiGateway` does the rest.

It also answers what never reaches the gateway, in the API's JSON error shape: methods API Gateway has
no resource method for, and requests the standard library's parser rejects (`send_error`).
"""

from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

from local.apigw import (
    MAX_PAYLOAD_BYTES,
    HttpRequest,
    HttpResponse,
    LocalApiGateway,
    error_response,
    too_large,
)

log = logging.getLogger("billing.local.http")

# The methods of API Gateway's `ANY` (what the resource /v1/{proxy+} has). Methods are case-sensitive
# tokens (RFC 9110 §9.1), as in API Gateway: `get` is not `GET`.
GATEWAY_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")

# Codes and sentences of the errors the standard library's request parser raises (`send_error`); the
# parser's own message echoes the raw request line, so it goes to the log only.
_PARSER_ERRORS = {
    HTTPStatus.BAD_REQUEST: ("malformed_request", "The request line or headers could not be parsed."),
    HTTPStatus.REQUEST_URI_TOO_LONG: ("uri_too_long", "The request line is too long."),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: ("headers_too_large", "The request headers are too large."),
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: ("http_version_not_supported", "Only HTTP/1.x is supported."),
}


def method_not_allowed() -> HttpResponse:
    """A method that is not one of API Gateway's (TRACE, CONNECT, PROPFIND, `get`, any other token).

    A REST API can only have the methods of `GATEWAY_METHODS`, and `ANY /v1/{proxy+}` has them all, so
    the CDK app's MISSING_AUTHENTICATION_TOKEN response (404 "No such route.") would claim the route does
    not exist when it does; none of its gateway responses covers a method it cannot have. 405 with
    `Allow` is HTTP's answer for a method the target does not support (RFC 9110 §15.5.6) and tells the
    client what would work; it is chosen over 501 so that one answer covers known methods (TRACE) and
    unknown tokens alike.
    """
    return error_response(
        405,
        "method_not_allowed",
        "The request method is not supported; use one of " + ", ".join(GATEWAY_METHODS) + ".",
        headers=[("Allow", ", ".join(GATEWAY_METHODS))],
    )


class _BodyTooLarge(Exception):
    pass


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    server_version = "billing-local"
    protocol_version = "HTTP/1.1"
    gateway: ClassVar[LocalApiGateway]

    def parse_request(self) -> bool:
        # The stdlib dispatches to `do_<METHOD>` and answers a missing one with its own 501 page; the
        # method is checked here instead, once the request line and headers are read, so that the answer
        # is the API's (a False return means "answered already" to `handle_one_request`).
        if not super().parse_request():
            return False
        if self.request_version == self.default_request_version:
            # "GET /" with no version is HTTP/0.9, whose responses have no status line nor headers: a
            # client could not tell an error from a body. API Gateway speaks HTTP/1.x only.
            self.close_connection = True
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 request")
            return False
        if self.command not in GATEWAY_METHODS:
            try:
                self._read_body()  # so that the connection can carry the next request
            except (_BodyTooLarge, ValueError):
                self.close_connection = True
            self._write(method_not_allowed())
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's answer to a request it cannot parse, in the API's error shape instead of HTML."""
        self.log_error("code %d, message %s", code, message)
        try:
            status = HTTPStatus(code)
            error_code, sentence = _PARSER_ERRORS.get(
                status, (status.phrase.lower().replace(" ", "_").replace("-", "_"), status.description + ".")
            )
        except ValueError:
            error_code, sentence = "bad_request", "The request could not be served."
        # The parser may give up before it knows the version: answer as HTTP/1.x all the same, since an
        # HTTP/0.9 answer is a bare body, without the status line and Content-Type.
        if self.request_version == self.default_request_version:
            self.request_version = self.protocol_version
        self.close_connection = True  # what follows a request that could not be parsed is unknowable
        self._write(error_response(code, error_code, sentence))

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except _BodyTooLarge:
            self.close_connection = True
            self._write(too_large())
            return
        except ValueError:
            self.close_connection = True
            self._write(error_response(400, "malformed_request", "The request body could not be read."))
            return
        url = urlsplit(self.path)
        request = HttpRequest(
            method=self.command,
            path=url.path or "/",
            query=url.query,
            headers=tuple((name, value) for name, value in self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
        )
        self._write(self.gateway.handle(request))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_PAYLOAD_BYTES:
            self._discard(length)
            raise _BodyTooLarge
        return self.rfile.read(length) if length else b""

    def _discard(self, length: int) -> None:
        # Read (and drop) what the client is sending: closing with unread data makes the kernel reset the
        # connection, and the client would lose the 413 it is owed.
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                return
            length -= len(chunk)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_PAYLOAD_BYTES:
                raise _BodyTooLarge
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, response: HttpResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)


class LocalHttpApi:
    """A threaded HTTP server on `host:port` (port 0 picks a free one) in a background thread."""

    def __init__(self, gateway: LocalApiGateway, host: str = "127.0.0.1", port: int = 8080) -> None:
        handler = type("GatewayRequestHandler", (_GatewayRequestHandler,), {"gateway": gateway})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="billing-local-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
