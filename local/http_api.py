"""The HTTP listener of the local API: real sockets in, `LocalApiGateway` does the rest."""

from __future__ import annotations

import logging
import threading
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


class _BodyTooLarge(Exception):
    pass


class _GatewayRequestHandler(BaseHTTPRequestHandler):
    server_version = "billing-local"
    protocol_version = "HTTP/1.1"
    gateway: ClassVar[LocalApiGateway]

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
