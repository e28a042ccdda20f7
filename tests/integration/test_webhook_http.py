"""The webhook HTTP transport against real sockets: deliveries, the SSRF guard on connect, TLS to a name
at a pinned address, redirects, deadlines, receivers that misbehave."""

from __future__ import annotations

import base64
import ipaddress
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import trustme
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from billing.adapters.webhook_http import (
    REDIRECT_ERROR,
    USER_AGENT,
    HttpWebhookTransport,
    system_resolver,
)
from billing.domain.webhooks.addresses import IPAddress, UnsafeUrl

TLS_NAME = "hooks.example.test"
PUBLIC = "93.184.216.34"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def httpserver(httpserver_ipv4: HTTPServer) -> HTTPServer:
    """pytest-httpserver's receiver, on 127.0.0.1 (its default `localhost` may be ::1)."""
    return httpserver_ipv4


@dataclass
class FakeResolver:
    """Answers from `answers`, one list per call (the last one repeats); no answer at all is NXDOMAIN."""

    answers: list[list[str]]
    calls: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append((host, port))
        if not self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answer = self.answers[min(len(self.calls), len(self.answers)) - 1]
        return [ipaddress.ip_address(address) for address in answer]


def resolving_to(*addresses: str) -> FakeResolver:
    return FakeResolver([list(addresses)])


def must_not_resolve(host: str, port: int) -> list[IPAddress]:
    pytest.fail(f"{host} was resolved")


@pytest.fixture
def no_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test (pytest's Failed is not an OSError to swallow)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        pytest.fail(f"a connection was attempted: {args[1:]!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def recorded_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a connection is attempted to; each one is refused."""
    seen: list[Any] = []

    def record(self: socket.socket, address: Any) -> None:
        seen.append(address)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket.socket, "connect", record)
    return seen


# ---- raw TCP receivers for the misbehaving cases ------------------------------------------------------


class RawServer:
    """A TCP server on 127.0.0.1; each connection is given to `handle` in a thread of its own."""

    def __init__(self, handle: Callable[[socket.socket], None]) -> None:
        self._handle = handle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._stopped = threading.Event()
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self._handle(conn)
        except OSError:
            pass  # the client gave up (the deadline tests): expected
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(handle))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(4096)
    return head


def wait_for_close(conn: socket.socket) -> None:
    while conn.recv(1024):
        pass


def drip(conn: socket.socket, data: bytes, every: float) -> None:
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(every)


def http_transport(**overrides: Any) -> HttpWebhookTransport:
    return HttpWebhookTransport(**{"allow_loopback": True, **overrides})


# ---- delivering -----------------------------------------------------------------------------------------


def test_a_2xx_over_http_loopback_delivers_the_exact_body_and_headers(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks/billing", method="POST").respond_with_data("thanks", status=200)
    body = b'{"type":"invoice.finalized","data":{"id":"inv_1","total":"59.00"}}'
    headers = {"Content-Type": "application/json", "X-Custom": "a value, with; punctuation"}

    outcome = http_transport().post(httpserver.url_for("/hooks/billing?tenant=t_1"), body, headers)

    assert outcome.status_code == 200
    assert outcome.succeeded
    assert outcome.error is None
    assert outcome.refused is False
    assert outcome.duration_ms >= 0
    [(received, _)] = httpserver.log
    assert received.method == "POST"
    assert received.path == "/hooks/billing"
    assert received.query_string == b"tenant=t_1"
    assert received.get_data() == body
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-Custom"] == "a value, with; punctuation"
    assert received.headers["Host"] == f"127.0.0.1:{httpserver.port}"
    assert received.headers["User-Agent"] == USER_AGENT
    assert received.headers["Content-Length"] == str(len(body))
    assert received.headers["Connection"] == "close"
    assert "Accept-Encoding" not in received.headers


def test_a_standard_webhooks_signed_request_arrives_verifiable(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("", status=204)
    payload = '{"type":"invoice.paid","data":{"id":"inv_1"}}'
    now = datetime.now(UTC)
    headers = {
        "webhook-id": "msg_2f9a",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("msg_2f9a", now, payload),
        "Content-Type": "application/json",
    }

    outcome = http_transport().post(httpserver.url_for("/hook"), payload.encode(), headers)

    assert outcome.status_code == 204
    [(received, _)] = httpserver.log
    assert {name: received.headers[name] for name in headers} == headers
    assert Webhook(SECRET).verify(received.get_data(), dict(received.headers)) == {
        "type": "invoice.paid",
        "data": {"id": "inv_1"},
    }


def test_the_transport_writes_its_own_host_user_agent_and_length_whatever_the_caller_sends(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")

    http_transport().post(
        httpserver.url_for("/hook"),
        b"{}",
        {
            "Host": "internal.example",
            "User-Agent": "curl",
            "Content-Length": "999",
            "Connection": "keep-alive",
        },
    )

    [(received, _)] = httpserver.log
    assert received.headers["Host"] == f"127.0.0.1:{httpserver.port}"
    assert received.headers["User-Agent"] == USER_AGENT
    assert received.headers["Content-Length"] == "2"
    assert received.headers["Connection"] == "close"


def test_a_header_that_cannot_be_sent_is_the_callers_error_raised_before_anything_is_sent(
    no_connections: None,
) -> None:
    transport = http_transport(resolver=must_not_resolve)

    with pytest.raises(ValueError, match="X-Bad"):
        transport.post("http://127.0.0.1:9/hook", b"{}", {"X-Bad": "a\r\nInjected: yes"})
    with pytest.raises(ValueError, match="token"):
        transport.post("http://127.0.0.1:9/hook", b"{}", {"Bad Name": "x"})


def test_the_next_checked_address_is_tried_when_one_refuses_the_connection(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    # Only 127.0.0.1 listens: 127.0.0.2 (loopback too) refuses the connection.
    resolver = resolving_to("127.0.0.2", "127.0.0.1")

    outcome = http_transport(resolver=resolver).post(
        f"http://hooks.local.test:{httpserver.port}/hook", b"{}", {}
    )

    assert outcome.status_code == 200
    assert resolver.calls == [("hooks.local.test", httpserver.port)]
    assert httpserver.log[0][0].headers["Host"] == f"hooks.local.test:{httpserver.port}"


# ---- https to a name, at a pinned address --------------------------------------------------------------


@dataclass
class TlsReceiver:
    server: HTTPServer
    ca: trustme.CA
    server_names: list[str | None]

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="module")
def tls_receiver_module() -> Iterator[TlsReceiver]:
    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert(TLS_NAME).configure_cert(context)
    names: list[str | None] = []

    def record_sni(sock: Any, server_name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(server_name)

    context.sni_callback = record_sni
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.start()
    yield TlsReceiver(server, ca, names)
    server.clear()
    server.stop()


@pytest.fixture
def tls_receiver(tls_receiver_module: TlsReceiver) -> TlsReceiver:
    tls_receiver_module.server.clear()
    tls_receiver_module.server_names.clear()
    return tls_receiver_module


def test_https_to_a_name_verifies_the_certificate_and_sni_of_the_name_at_the_pinned_address(
    tls_receiver: TlsReceiver,
) -> None:
    server = tls_receiver.server
    server.expect_request("/hooks", method="POST").respond_with_data("ok")
    resolver = resolving_to("127.0.0.1")
    transport = HttpWebhookTransport(
        allow_loopback=True, resolver=resolver, ssl_context=tls_receiver.client_context()
    )

    outcome = transport.post(f"https://{TLS_NAME}:{server.port}/hooks?k=1", b'{"a":1}', {"X-Id": "1"})

    assert outcome.status_code == 200, outcome.error
    assert resolver.calls == [(TLS_NAME, server.port)]
    assert tls_receiver.server_names == [TLS_NAME]
    [(received, _)] = server.log
    assert received.headers["Host"] == f"{TLS_NAME}:{server.port}"
    assert received.get_data() == b'{"a":1}'


def test_https_to_a_name_the_certificate_is_not_for_is_a_tls_error_and_nothing_is_sent(
    tls_receiver: TlsReceiver,
) -> None:
    server = tls_receiver.server
    server.expect_request("/hooks").respond_with_data("ok")
    transport = HttpWebhookTransport(
        allow_loopback=True, resolver=resolving_to("127.0.0.1"), ssl_context=tls_receiver.client_context()
    )

    outcome = transport.post(f"https://other.example.test:{server.port}/hooks?token=s3cr3t", b"{}", {})

    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("tls error: ")
    assert "other.example.test" in outcome.error  # the name that was checked
    assert "s3cr3t" not in outcome.error
    assert tls_receiver.server_names == ["other.example.test"]
    assert server.log == []


def test_https_to_a_receiver_whose_ca_is_not_trusted_is_a_tls_error(tls_receiver: TlsReceiver) -> None:
    server = tls_receiver.server
    transport = HttpWebhookTransport(allow_loopback=True, resolver=resolving_to("127.0.0.1"))

    outcome = transport.post(f"https://{TLS_NAME}:{server.port}/hooks", b"{}", {})

    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error == "tls error: certificate verify failed: unable to get local issuer certificate"
    assert server.log == []


# ---- the SSRF guard -------------------------------------------------------------------------------------


def test_loopback_is_refused_when_loopback_is_not_allowed_and_the_receiver_gets_nothing(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    transport = HttpWebhookTransport(allow_loopback=False, resolver=resolving_to("127.0.0.1"))

    plain = transport.post(httpserver.url_for("/hook"), b"{}", {})
    tls = transport.post(f"https://127.0.0.1:{httpserver.port}/hook", b"{}", {})
    named = transport.post(f"https://localhost:{httpserver.port}/hook", b"{}", {})

    assert (plain.status_code, plain.refused) == (None, True)
    assert plain.error == (
        "refused: url must use https (plain http is only for loopback addresses in the local runtime)"
    )
    assert (tls.status_code, tls.refused) == (None, True)
    assert tls.error == "refused: url resolves to 127.0.0.1, a loopback address"
    assert named.refused
    assert named.error == "refused: url host localhost resolves to 127.0.0.1, a loopback address"
    assert httpserver.log == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://10.0.0.1/", "a private address"),
        ("https://169.254.169.254/latest/meta-data", "the cloud instance metadata service"),
        ("https://[::ffff:169.254.169.254]/", "the cloud instance metadata service"),
        ("https://[fd00:ec2::254]/", "the cloud instance metadata service"),
        ("https://[64:ff9b::a9fe:a9fe]/latest", "the cloud instance metadata service"),
        ("https://[::1]:8443/", "a loopback address"),
        ("https://0.0.0.0/", "the unspecified address"),
        ("https://100.64.0.1/", "not publicly routable"),
        ("https://2130706433/", "a number that resolvers read as an IPv4 address"),
    ],
)
def test_a_literal_address_that_is_not_public_is_refused_without_resolving_or_connecting(
    no_connections: None, url: str, why: str
) -> None:
    transport = HttpWebhookTransport(resolver=must_not_resolve)

    outcome = transport.post(url, b"{}", {"webhook-signature": "v1,secret"})

    assert outcome.refused
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused: ")
    assert why in outcome.error
    with pytest.raises(UnsafeUrl) as raised:
        transport.check(url)
    assert raised.value.code == "webhook_url_refused"


def test_a_url_that_is_not_a_webhook_url_is_refused_and_check_calls_it_invalid(no_connections: None) -> None:
    transport = HttpWebhookTransport(resolver=must_not_resolve)

    outcome = transport.post("ftp://hooks.example.com/x", b"{}", {})

    assert outcome.refused
    assert outcome.error == "refused: url must use https"
    with pytest.raises(UnsafeUrl) as raised:
        transport.check("https://hooks.example.com/x#frag")
    assert raised.value.code == "invalid_webhook_url"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (["10.1.2.3"], "resolves to 10.1.2.3, a private address"),
        ([PUBLIC, "10.1.2.3"], "resolves to 10.1.2.3, a private address"),
        (["2606:2800:220:1::1", "169.254.169.254"], "the cloud instance metadata service"),
        (["::ffff:10.0.0.7"], "a private address"),
    ],
)
def test_a_name_resolving_to_any_address_that_is_not_public_is_refused_without_connecting(
    no_connections: None, answer: list[str], why: str
) -> None:
    resolver = resolving_to(*answer)
    transport = HttpWebhookTransport(resolver=resolver)

    outcome = transport.post("https://hooks.example.com/in?token=s3cr3t", b"{}", {})

    assert outcome.refused
    assert outcome.status_code is None
    assert outcome.error is not None
    assert outcome.error.startswith("refused: url host hooks.example.com ")
    assert why in outcome.error
    assert "s3cr3t" not in outcome.error
    assert resolver.calls == [("hooks.example.com", 443)]
    with pytest.raises(UnsafeUrl) as raised:
        transport.check("https://hooks.example.com/in")
    assert raised.value.code == "webhook_url_refused"
    assert why in raised.value.message


def test_check_accepts_a_name_resolving_only_to_public_addresses_without_connecting(
    no_connections: None,
) -> None:
    resolver = resolving_to(PUBLIC, "2606:2800:220:1:248:1893:25c8:1946")

    endpoint = HttpWebhookTransport(resolver=resolver).check("https://Hooks.Example.com:8443/in?x=1")

    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.target) == (
        "https",
        "hooks.example.com",
        8443,
        "/in?x=1",
    )
    assert resolver.calls == [("hooks.example.com", 8443)]


def test_a_name_that_does_not_resolve_is_unresolvable_not_refused(no_connections: None) -> None:
    transport = HttpWebhookTransport(resolver=FakeResolver([]))
    empty = HttpWebhookTransport(resolver=FakeResolver([[]]))

    outcome = transport.post("https://nowhere.example.com/hook", b"{}", {})

    assert outcome.status_code is None
    assert outcome.error == "could not resolve host"
    assert not outcome.refused
    assert empty.post("https://nowhere.example.com/hook", b"{}", {}).error == "could not resolve host"
    for unresolved in (transport, empty):
        with pytest.raises(UnsafeUrl) as raised:
            unresolved.check("https://nowhere.example.com/hook")
        assert raised.value.code == "webhook_url_unresolvable"


def test_the_system_resolver_answers_every_address_once_in_order() -> None:
    assert system_resolver("127.0.0.1", 443) == [ipaddress.ip_address("127.0.0.1")]
    with pytest.raises(OSError):  # noqa: PT011 - a gaierror, its errno depends on the libc
        system_resolver("does-not-exist.invalid", 443)


# ---- DNS rebinding: the name is resolved once per attempt and the connection uses that answer ----------


def test_the_connection_goes_to_the_address_checked_in_the_attempt_not_to_a_later_answer(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    # Only the first lookup answers the loopback receiver; any later one answers a public address, which
    # plain http may not reach: a second lookup within the attempt could not have delivered.
    resolver = FakeResolver([["127.0.0.1"], [PUBLIC]])
    transport = http_transport(resolver=resolver)
    url = f"http://rebind.example.test:{httpserver.port}/hook"

    first = transport.post(url, b"{}", {})

    assert first.status_code == 200
    assert resolver.calls == [("rebind.example.test", httpserver.port)]
    assert len(httpserver.log) == 1

    second = transport.post(url, b"{}", {})  # the next attempt resolves again, and checks the new answer

    assert second.refused
    assert second.error == (
        f"refused: url host rebind.example.test resolves to {PUBLIC}: "
        "plain http is only allowed to loopback addresses"
    )
    assert len(resolver.calls) == 2
    assert len(httpserver.log) == 1


def test_a_name_rebinding_to_loopback_after_the_check_is_still_connected_at_the_checked_address(
    httpserver: HTTPServer, recorded_connections: list[Any]
) -> None:
    resolver = FakeResolver([[PUBLIC], ["127.0.0.1"]])
    transport = HttpWebhookTransport(resolver=resolver)

    outcome = transport.post(f"https://rebind.example.com:{httpserver.port}/hook", b"{}", {})

    assert outcome.error == "connection refused"  # the fake network refuses every connection
    assert recorded_connections == [(PUBLIC, httpserver.port)]
    assert resolver.calls == [("rebind.example.com", httpserver.port)]
    assert httpserver.log == []


# ---- answers that are not a success ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_the_answer_and_its_location_is_never_requested(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "", status=status, headers={"Location": httpserver.url_for("/internal/admin")}
    )
    httpserver.expect_request("/internal/admin").respond_with_data("you should not be here")

    outcome = http_transport().post(httpserver.url_for("/hook"), b"{}", {})

    assert outcome.status_code == status
    assert outcome.error == REDIRECT_ERROR
    assert not outcome.succeeded
    assert [request.path for request, _ in httpserver.log] == ["/hook"]


def test_a_redirect_to_a_metadata_address_is_not_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/iam"}
    )

    outcome = http_transport().post(httpserver.url_for("/hook"), b"{}", {})

    assert (outcome.status_code, outcome.error) == (302, REDIRECT_ERROR)
    assert len(httpserver.log) == 1


def test_410_is_returned_as_it_is(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("gone", status=410)

    outcome = http_transport().post(httpserver.url_for("/hook"), b"{}", {})

    assert (outcome.status_code, outcome.error, outcome.retry_after) == (410, None, None)
    assert not outcome.succeeded


@pytest.mark.parametrize("retry_after", ["120", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_a_5xx_keeps_the_raw_retry_after(httpserver: HTTPServer, retry_after: str) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "busy", status=500, headers={"Retry-After": retry_after}
    )

    outcome = http_transport().post(httpserver.url_for("/hook"), b"{}", {})

    assert (outcome.status_code, outcome.error, outcome.retry_after) == (500, None, retry_after)


# ---- one deadline ---------------------------------------------------------------------------------------


def test_a_receiver_that_never_answers_is_cut_at_the_deadline(raw_server: Any) -> None:
    def silent(conn: socket.socket) -> None:
        read_request(conn)
        wait_for_close(conn)

    server = raw_server(silent)
    started = time.monotonic()

    outcome = http_transport(timeout_seconds=1).post(server.url(), b"{}", {})

    elapsed = time.monotonic() - started
    assert outcome.status_code is None
    assert outcome.error == "no answer within 1 s"
    assert 0.9 <= elapsed < 1.6
    assert 900 <= outcome.duration_ms < 1600


def test_a_receiver_dripping_its_status_line_is_cut_at_the_deadline_not_per_byte(raw_server: Any) -> None:
    def dripping(conn: socket.socket) -> None:
        read_request(conn)
        drip(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", every=0.1)

    server = raw_server(dripping)
    started = time.monotonic()

    outcome = http_transport(timeout_seconds=1).post(server.url(), b"{}", {})

    assert outcome.error == "no answer within 1 s"
    assert outcome.status_code is None
    assert time.monotonic() - started < 1.6


def test_a_receiver_dripping_its_body_keeps_its_status_and_is_cut_at_the_deadline(raw_server: Any) -> None:
    def dripping(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        drip(conn, b"x" * 100, every=0.1)

    server = raw_server(dripping)
    started = time.monotonic()

    outcome = http_transport(timeout_seconds=1).post(server.url(), b"{}", {})

    assert (outcome.status_code, outcome.error) == (200, None)
    assert time.monotonic() - started < 1.6


def test_the_deadline_and_duration_follow_the_injected_clock(no_connections: None) -> None:
    now = [1000.0]

    def slow_dns(host: str, port: int) -> list[IPAddress]:
        now[0] += 16.0  # the answer comes after the 15 s deadline
        return [ipaddress.ip_address(PUBLIC)]

    transport = HttpWebhookTransport(resolver=slow_dns, monotonic=lambda: now[0])

    outcome = transport.post("https://hooks.example.com/hook", b"{}", {})

    assert outcome.error == "no answer within 15 s"
    assert outcome.status_code is None
    assert not outcome.refused
    assert outcome.duration_ms == 16_000


# ---- receivers that break the connection ----------------------------------------------------------------


def test_a_receiver_that_closes_without_answering_is_a_connection_reset(raw_server: Any) -> None:
    server = raw_server(read_request)

    outcome = http_transport().post(server.url(), b"{}", {})

    assert (outcome.status_code, outcome.error) == (None, "connection reset")


def test_a_receiver_that_resets_the_connection_is_a_connection_reset(raw_server: Any) -> None:
    def reset(conn: socket.socket) -> None:
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    server = raw_server(reset)

    outcome = http_transport().post(server.url(), b"{}", {})

    assert (outcome.status_code, outcome.error) == (None, "connection reset")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "invalid answer: no HTTP status line"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "invalid answer: not HTTP/1.x"),
        (
            b"HTTP/1.1 200 " + b"A" * 70_000 + b"\r\n\r\n",
            "invalid answer: a line of the status or headers is too long",
        ),
    ],
)
def test_an_answer_that_is_not_http_is_an_invalid_answer(raw_server: Any, answer: bytes, error: str) -> None:
    def garbage(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(answer)

    server = raw_server(garbage)

    outcome = http_transport().post(server.url(), b"{}", {})

    assert (outcome.status_code, outcome.error) == (None, error)


def test_a_closed_port_is_connection_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]

    outcome = http_transport().post(f"http://127.0.0.1:{port}/hook", b"{}", {})

    assert (outcome.status_code, outcome.error, outcome.refused) == (None, "connection refused", False)


def test_an_endless_answer_body_is_read_only_up_to_the_limit(raw_server: Any) -> None:
    def endless(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
        block = b"x" * 65536
        while True:
            conn.sendall(block)

    server = raw_server(endless)
    started = time.monotonic()

    outcome = http_transport(timeout_seconds=5, max_response_bytes=64 * 1024).post(server.url(), b"{}", {})

    assert (outcome.status_code, outcome.error) == (200, None)
    assert time.monotonic() - started < 1.0  # reading it all would have run to the 5 s deadline


def test_a_large_request_body_is_sent_whole(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    body = bytes(range(256)) * 1024  # 256 KiB, many sends

    outcome = http_transport().post(httpserver.url_for("/hook"), body, {})

    assert outcome.status_code == 200
    assert httpserver.log[0][0].get_data() == body
