"""The HTTP transport that POSTs a webhook to a tenant's endpoint, with the SSRF guard enforced on connect.

The rules of what may be connected to are `billing.domain.webhooks.addresses`; this module makes them
hold on the wire:

- Every attempt parses the URL, resolves its host once and checks EVERY address the name resolved to:
  one refused address refuses the attempt, and then nothing is connected to.
- The connection goes to one of the addresses that were checked (the first that accepts it), never to the
  name: `http.client` would resolve the name again, and a second answer (DNS rebinding) could point
  anywhere. TLS still speaks to the name: SNI and the certificate check use the URL's host.
- One deadline covers connect, TLS handshake, sending and reading the answer: the socket timeout is set
  to what is left of it before every blocking step, so a receiver that drips a byte at a time is cut at
  the deadline like one that never answers.
- Redirects are never followed (a 3xx is the attempt's answer); at most `max_response_bytes` of the
  answer's body are read, and they are discarded.

`post` never raises for what the network or the receiver does: it returns an `AttemptOutcome` whose
`error` is a short sentence without the URL's query, the headers or the body.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from billing.domain.webhooks.addresses import (
    EndpointUrl,
    IPAddress,
    UnsafeUrl,
    parse_url,
    refused_addresses,
)
from billing.domain.webhooks.attempts import AttemptOutcome

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

USER_AGENT = "usage-billing-webhooks/1"
DEFAULT_TIMEOUT_SECONDS = 15.0
MAX_RESPONSE_BYTES = 64 * 1024
REDIRECT_ERROR = "redirect not followed (Location is not used)"
UNRESOLVABLE_ERROR = "could not resolve host"
_CHUNK = 16 * 1024  # one TLS record: a send or a read is one socket operation under one armed timeout
# Headers the transport writes itself: a caller's own value for one of them is replaced, not sent twice.
_TRANSPORT_HEADERS = frozenset({"host", "user-agent", "content-length", "connection", "transfer-encoding"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")

Resolver = Callable[[str, int], list[IPAddress]]  # host, port -> every address the host resolves to


RESOLVE_TIMEOUT_SECONDS = 5.0


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address `getaddrinfo` gives for a TCP connection to (host, port), without repeats, in order.

    Raises `OSError` (`socket.gaierror`) when the name does not resolve or the lookup takes longer than
    RESOLVE_TIMEOUT_SECONDS: `getaddrinfo` itself has no timeout, so it runs in a thread of its own that
    is left to finish (one per lookup: a name that never answers holds up no one else's lookup),
    `UnicodeError` when it cannot be encoded for a lookup.
    """
    outcome: list[Any] = []

    def look_up() -> None:
        try:
            outcome.append(_getaddrinfo(host, port))
        except BaseException as exc:  # handed to the caller below
            outcome.append(exc)

    thread = threading.Thread(target=look_up, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(RESOLVE_TIMEOUT_SECONDS)
    if not outcome:
        raise OSError(f"the lookup took more than {RESOLVE_TIMEOUT_SECONDS:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    addresses: list[IPAddress] = outcome[0]
    return addresses


def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    ):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


class HttpWebhookTransport:
    """POSTs webhooks; stateless between calls, so one instance serves every invocation.

    `allow_loopback` is the local runtime's switch (plain http, to loopback addresses only); deployed it
    is off, and only https to publicly routable addresses is allowed.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        resolver: Resolver = system_resolver,
        ssl_context: ssl.SSLContext | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        if not timeout_seconds > 0:
            raise ValueError("the webhook timeout must be positive")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes may not be negative")
        self._allow_loopback = allow_loopback
        self._timeout = timeout_seconds
        self._resolver = resolver
        self._monotonic = monotonic
        self._max_response_bytes = max_response_bytes
        if ssl_context is None:
            ssl_context = ssl.create_default_context()
            ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._ssl = ssl_context

    def __repr__(self) -> str:
        return f"HttpWebhookTransport(allow_loopback={self._allow_loopback}, timeout={self._timeout:g}s)"

    def check(self, url: str) -> EndpointUrl:
        """At endpoint creation: parse, resolve, check every address. Raises UnsafeUrl (code
        'invalid_webhook_url' / 'webhook_url_refused' / 'webhook_url_unresolvable' for DNS failure)."""
        endpoint = parse_url(url, allow_loopback=self._allow_loopback)
        self._checked_addresses(endpoint)
        return endpoint

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> AttemptOutcome:
        """One delivery attempt; never raises for anything the network or the receiver does.

        Raises `ValueError` only for the caller's own mistake: a header that cannot be sent as given.
        """
        request_headers = _request_headers(headers)
        started = self._monotonic()
        deadline = _Deadline(started + self._timeout, self._monotonic)

        def outcome(
            status: int | None, error: str | None, *, retry_after: str | None = None, refused: bool = False
        ) -> AttemptOutcome:
            elapsed_ms = round((self._monotonic() - started) * 1000)
            return AttemptOutcome(status, error, max(elapsed_ms, 0), retry_after, refused)

        try:
            endpoint = parse_url(url, allow_loopback=self._allow_loopback)
            addresses = self._checked_addresses(endpoint)
        except UnsafeUrl as exc:
            if exc.code == "webhook_url_unresolvable":
                return outcome(None, UNRESOLVABLE_ERROR)
            return outcome(None, f"refused: {exc.message}", refused=True)

        connection: http.client.HTTPConnection | None = None
        response: _DeadlineResponse | None = None
        try:
            connection = _connection(endpoint, addresses, deadline, self._ssl)
            connection.connect()
            connection.putrequest("POST", endpoint.target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", endpoint.host_header)
            for name, value in request_headers:
                connection.putheader(name, value)
            connection.putheader("User-Agent", USER_AGENT)
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("Connection", "close")
            deadline.arm(connection.sock)
            connection.endheaders()
            view = memoryview(body)
            for offset in range(0, len(view), _CHUNK):
                deadline.arm(connection.sock)
                connection.sock.sendall(view[offset : offset + _CHUNK])
            response = _DeadlineResponse(connection.sock, deadline)
            response.begin()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return outcome(None, _failure(exc, self._timeout))
        else:
            # The status is the receiver's answer; what follows it is read only to let it finish, within
            # the deadline and the size limit, and never kept.
            _drain(response, self._max_response_bytes)
            status = response.status
            retry_after = response.getheader("Retry-After")
            return outcome(status, _status_error(status), retry_after=retry_after)
        finally:
            if response is not None:
                response.close()
            if connection is not None:
                connection.close()

    def _checked_addresses(self, endpoint: EndpointUrl) -> list[IPAddress]:
        """Every address the endpoint's host resolves to, all allowed; else UnsafeUrl saying why not."""
        literal = endpoint.literal_address
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = list(self._resolver(endpoint.host, endpoint.port))
            except (OSError, ValueError) as exc:  # gaierror; UnicodeError for a name idna cannot encode
                raise _unresolvable(endpoint) from exc
            if not addresses:
                raise _unresolvable(endpoint)
        problems = refused_addresses(endpoint, addresses, allow_loopback=self._allow_loopback)
        if problems:
            more = f" (and {len(problems) - 1} more refused address(es))" if len(problems) > 1 else ""
            raise UnsafeUrl(f"url host {endpoint.host} {problems[0]}{more}")
        return addresses


# ---- connections pinned to checked addresses --------------------------------------------------------


class _Deadline:
    """What is left of one attempt's time, read from the injected clock."""

    def __init__(self, at: float, monotonic: Callable[[], float]) -> None:
        self._at = at
        self._monotonic = monotonic

    def remaining(self) -> float:
        left = self._at - self._monotonic()
        if left <= 0:
            raise TimeoutError("webhook deadline passed")
        return left

    def arm(self, sock: socket.socket | None) -> None:
        """Bound the next blocking operation on `sock` by what is left of the deadline."""
        left = self.remaining()
        if sock is not None:
            sock.settimeout(left)


def _open_pinned(addresses: list[IPAddress], port: int, deadline: _Deadline) -> socket.socket:
    """A TCP connection to the first checked address that accepts one; the name is never looked up.

    An address that refuses (or cannot be reached) gives way to the next; a timeout ends the attempt, as
    the deadline is then spent.
    """
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            deadline.arm(sock)
            sock.connect((str(address), port))
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last = exc
            continue
        with contextlib.suppress(OSError):  # an optimisation only
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise last if last is not None else ConnectionRefusedError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Plain http (the local runtime's loopback only): the socket goes to a checked address."""

    def __init__(self, endpoint: EndpointUrl, addresses: list[IPAddress], deadline: _Deadline) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=None)  # each step is armed by `deadline`
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = _open_pinned(self._addresses, self.port, self._deadline)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """https: TCP to a checked address, TLS to the URL's host name (SNI and certificate verification)."""

    def __init__(
        self,
        endpoint: EndpointUrl,
        addresses: list[IPAddress],
        deadline: _Deadline,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(endpoint.host, endpoint.port, timeout=None, context=context)
        self._addresses = addresses
        self._deadline = deadline
        self._tls = context
        self._server_name = endpoint.host

    def connect(self) -> None:
        raw = _open_pinned(self._addresses, self.port, self._deadline)
        try:
            self._deadline.arm(raw)
            self.sock = self._tls.wrap_socket(raw, server_hostname=self._server_name)
        except BaseException:
            raw.close()
            raise


def _connection(
    endpoint: EndpointUrl, addresses: list[IPAddress], deadline: _Deadline, context: ssl.SSLContext
) -> http.client.HTTPConnection:
    if endpoint.scheme == "https":
        return _PinnedHTTPSConnection(endpoint, addresses, deadline, context)
    return _PinnedHTTPConnection(endpoint, addresses, deadline)


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose every read is bounded by what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._deadline.arm(self._sock)
        return self._sock.recv_into(buffer)


class _DeadlineResponse(http.client.HTTPResponse):
    """An `HTTPResponse` reading through `_DeadlineReader`: the status line and headers, however slowly
    they come, are read within the attempt's deadline (a plain one would wait a full timeout per byte)."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__(sock, method="POST")
        self.fp.close()  # the plain socket file made by HTTPResponse: read through the deadline instead
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline), _CHUNK)


def _drain(response: http.client.HTTPResponse, limit: int) -> None:
    """Read (and drop) at most `limit` bytes of the body; a failure here does not change the answer."""
    left = limit
    try:
        while left > 0:
            chunk = response.read1(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, http.client.HTTPException, ValueError):
        return


# ---- what the outcome says --------------------------------------------------------------------------


def _status_error(status: int) -> str | None:
    if 300 <= status < 400:
        return REDIRECT_ERROR
    if status < 200:
        return f"invalid answer: informational status {status} is not a final answer"
    return None


def _failure(exc: BaseException, timeout: float) -> str:
    """A short sentence for why no answer came: never the URL, a header or a byte of the body."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = f": {exc.verify_message}" if exc.verify_message else ""
        return f"tls error: certificate verify failed{detail}"
    if isinstance(exc, ssl.SSLError):
        return f"tls error: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return "connection reset"  # http.client.RemoteDisconnected too: closed before any answer
    if isinstance(exc, http.client.LineTooLong):
        return "invalid answer: a line of the status or headers is too long"
    if isinstance(exc, http.client.UnknownProtocol):
        return "invalid answer: not HTTP/1.x"
    if isinstance(exc, http.client.BadStatusLine):
        return "invalid answer: no HTTP status line"
    if isinstance(exc, http.client.HTTPException):
        return f"invalid answer: {type(exc).__name__}"
    if isinstance(exc, OSError):
        return f"connection failed: {exc.strerror or type(exc).__name__}"
    return f"connection failed: {type(exc).__name__}"


def _unresolvable(endpoint: EndpointUrl) -> UnsafeUrl:
    return UnsafeUrl(f"url host {endpoint.host} could not be resolved", "webhook_url_unresolvable")


def _request_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """The caller's headers, checked before anything is sent; the transport's own ones are dropped."""
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError("a webhook header name is not a valid HTTP token")
        if not isinstance(value, str) or _HEADER_VALUE_FORBIDDEN.search(value) or not value.isascii():
            raise ValueError(
                f"the value of webhook header {name} cannot be sent (a line break, NUL or non-ASCII)"
            )
        if name.lower() not in _TRANSPORT_HEADERS:
            checked.append((name, value))
    return checked
