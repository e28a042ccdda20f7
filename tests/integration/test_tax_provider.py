"""The HTTP tax provider adapter against a real local HTTP server: good answers, slow ones, 5xx, garbage."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from billing.adapters.tax_provider import (
    HttpTaxProvider,
    TaxProviderConfig,
    TaxProviderRejected,
    TaxProviderUnavailable,
)
from billing.domain.tax.errors import TaxProviderFailed
from billing.domain.tax.model import TaxLocation, TaxReason
from billing.domain.tax.resilience import CircuitBreaker, LastKnownGoodRates
from billing.runtime import logger
from billing.services.taxation import TaxationService
from tests.unit.tax.builders import ENGINE, request, where

API_KEY = "tk_live_0123456789abcdefSECRET"
NYC = TaxLocation("US", "NY", "10001")
NY_RATE = Decimal("0.08875")


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout tests) breaks the pipe: expected, not news


@dataclass
class FakeTaxProvider:
    """A provider on 127.0.0.1 that answers as its `mode` says: ok, slow, trickle, status, garbage, drop.

    ok: one tax line per request line at `rate` in the line's location; slow: ok after `delay` seconds;
    trickle: the headers at once, then the body one byte every `delay` seconds; status: `status` with
    `error_body`; garbage: 200 with HTML; drop: closes the connection without a word.
    """

    mode: str = "ok"
    rate: Decimal = NY_RATE
    delay: float = 0.0
    status: int = 500
    error_body: bytes = b'{"error": {"code": "internal"}}'
    answer: dict[str, Any] | None = None  # a fixed 200 body instead of the computed one
    seen: list[SeenRequest] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def config(self, **overrides: Any) -> TaxProviderConfig:
        values: dict[str, Any] = {"name": "faketax", "base_url": self.url, "api_key": API_KEY}
        return TaxProviderConfig(**{**values, **overrides})

    def quote_for(self, body: dict[str, Any]) -> dict[str, Any]:
        lines = []
        for line in body["lines"]:
            location = line["location"]
            jurisdiction = "-".join(part for part in (location["country"], location["region"]) if part)
            tax = (Decimal(line["amount_minor"]) * self.rate).quantize(Decimal(1), ROUND_HALF_EVEN)
            lines.append(
                {
                    "line_ref": line["ref"],
                    "jurisdiction": jurisdiction,
                    "rate": float(self.rate),  # a JSON number: the adapter reads it as an exact Decimal
                    "taxable_amount_minor": line["amount_minor"],
                    "tax_minor": int(tax),
                    "rule_id": f"faketax:{jurisdiction}:2026",
                    "tax_type": "sales_tax",
                }
            )
        return {"quote_id": f"q_{len(self.seen)}", "currency": body["currency"], "lines": lines}

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                fake.seen.append(SeenRequest(self.path, dict(self.headers.items()), body))
                if fake.mode == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                if fake.mode == "status":
                    self._send(fake.status, fake.error_body)
                elif fake.mode == "garbage":
                    self._send(200, b"<html><body>Service temporarily unavailable</body></html>")
                else:
                    self._send(200, json.dumps(fake.answer or fake.quote_for(body)).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if fake.mode != "trickle":
                    self.wfile.write(payload)
                    return
                for byte in payload:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(fake.delay)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output (and its captured logs) to what the code under test says

        server = QuietServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self.server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def fake_provider() -> Iterator[FakeTaxProvider]:
    fake = FakeTaxProvider()
    fake.start()
    yield fake
    fake.stop()


def nyc_request(*lines: tuple[str, int] | tuple[str, int, str], **kwargs: Any) -> Any:
    return request(NYC, *(lines or (("api", 10_000),)), tax_id="12-3456789", **kwargs)


# ---- a good answer -------------------------------------------------------------------------------------


def test_a_good_answer_becomes_a_quote_of_exact_tax_lines_with_the_providers_rules(
    fake_provider: FakeTaxProvider,
) -> None:
    provider = HttpTaxProvider(fake_provider.config())

    quote = provider.quote(nyc_request(("api", 10_000), ("seats", 2_999, "saas")))

    assert quote.engine == "faketax"
    assert [(t.line_ref, t.jurisdiction, t.rate, t.tax_minor, t.rule_id) for t in quote.lines] == [
        ("api", "US-NY", Decimal("0.08875"), 888, "faketax:US-NY:2026"),
        ("seats", "US-NY", Decimal("0.08875"), 266, "faketax:US-NY:2026"),
    ]
    assert all(t.reason is TaxReason.TAXABLE and not t.estimated for t in quote.lines)
    assert quote.tax_minor == 1_154
    assert [d["line_ref"] for d in quote.decisions] == ["api", "seats"]
    assert quote.decisions[0]["provider_quote_id"] == "q_1"
    assert quote.decisions[0]["engine"] == "faketax"
    assert "12-3456789" not in json.dumps([dict(d) for d in quote.decisions])  # the tax id is not audited


def test_the_request_carries_minor_units_the_location_registrations_and_an_idempotency_key(
    fake_provider: FakeTaxProvider,
) -> None:
    HttpTaxProvider(fake_provider.config(base_url=fake_provider.url + "/tax/")).quote(nyc_request())

    [seen] = fake_provider.seen
    assert seen.path == "/tax/v1/quotes"
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Idempotency-Key"].startswith("inv_test:")
    assert seen.body["currency"] == "USD"
    assert seen.body["tax_date"] == "2026-03-31"
    assert seen.body["lines"] == [
        {
            "ref": "api",
            "amount_minor": 10_000,
            "tax_code": "saas",
            "location": {"country": "US", "region": "NY", "postal_code": "10001"},
        }
    ]
    assert seen.body["customer"]["tax_id"] == "12-3456789"
    assert seen.body["customer"]["business"] is True
    assert "US-NY" in seen.body["seller"]["registrations"]


def test_the_same_request_retried_keeps_its_idempotency_key_and_other_lines_get_another(
    fake_provider: FakeTaxProvider,
) -> None:
    provider = HttpTaxProvider(fake_provider.config())
    provider.quote(nyc_request(("api", 10_000)))
    provider.quote(nyc_request(("api", 10_000)))
    provider.quote(nyc_request(("api", 12_000)))

    keys = [seen.headers["Idempotency-Key"] for seen in fake_provider.seen]
    assert keys[0] == keys[1] != keys[2]


# ---- failures ------------------------------------------------------------------------------------------


def test_a_provider_slower_than_the_timeout_is_unavailable_within_the_timeout_budget(
    fake_provider: FakeTaxProvider,
) -> None:
    fake_provider.mode, fake_provider.delay = "slow", 2.0
    provider = HttpTaxProvider(fake_provider.config(timeout_seconds=0.3))

    started = time.monotonic()
    with pytest.raises(TaxProviderUnavailable) as raised:
        provider.quote(nyc_request())

    assert raised.value.code == "provider_timeout"
    assert isinstance(raised.value, TaxProviderFailed)
    assert time.monotonic() - started < 0.3 + 0.2


def test_one_deadline_covers_the_whole_answer_even_when_it_trickles_in(
    fake_provider: FakeTaxProvider,
) -> None:
    # Every byte arrives well within a per-read timeout, the whole answer far beyond the budget.
    fake_provider.mode, fake_provider.delay = "trickle", 0.02
    provider = HttpTaxProvider(fake_provider.config(timeout_seconds=0.3))

    started = time.monotonic()
    with pytest.raises(TaxProviderUnavailable) as raised:
        provider.quote(nyc_request())

    assert raised.value.code == "provider_timeout"
    assert time.monotonic() - started < 0.3 + 0.2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "provider_server_error"),
        (503, "provider_server_error"),
        (429, "provider_throttled"),
        (408, "provider_timeout"),
        (401, "provider_unauthorized"),
        (403, "provider_unauthorized"),
        (302, "provider_unexpected_status"),
    ],
)
def test_server_errors_throttling_and_a_refused_key_are_the_provider_being_unavailable(
    fake_provider: FakeTaxProvider, status: int, code: str
) -> None:
    fake_provider.mode, fake_provider.status = "status", status

    with pytest.raises(TaxProviderUnavailable) as raised:
        HttpTaxProvider(fake_provider.config()).quote(nyc_request())

    assert raised.value.code == code


def test_a_4xx_is_a_rejection_of_the_request_with_the_providers_code_but_not_its_message(
    fake_provider: FakeTaxProvider,
) -> None:
    fake_provider.mode, fake_provider.status = "status", 422
    fake_provider.error_body = (
        b'{"error": {"code": "invalid_address", "message": "no such zip 10001 for Jo"}}'
    )

    with pytest.raises(TaxProviderRejected) as raised:
        HttpTaxProvider(fake_provider.config()).quote(nyc_request())

    assert (raised.value.status, raised.value.provider_code) == (422, "invalid_address")
    assert not isinstance(raised.value, TaxProviderFailed)  # not retried, not counted by the breaker
    assert "Jo" not in str(raised.value)


def test_an_answer_that_is_not_json_is_a_malformed_answer(fake_provider: FakeTaxProvider) -> None:
    fake_provider.mode = "garbage"

    with pytest.raises(TaxProviderUnavailable) as raised:
        HttpTaxProvider(fake_provider.config()).quote(nyc_request())

    assert raised.value.code == "provider_malformed_response"


def good_line(**changes: Any) -> dict[str, Any]:
    line = {
        "line_ref": "api",
        "jurisdiction": "US-NY",
        "rate": "0.08875",
        "taxable_amount_minor": 10_000,
        "tax_minor": 888,
        "rule_id": "faketax:US-NY",
    }
    return {**line, **changes}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"lines": []}, id="a request line left untaxed"),
        pytest.param({"lines": [good_line(), good_line(line_ref="other")]}, id="an unknown line"),
        pytest.param({"lines": [good_line(rate="1.5")]}, id="a rate above 1"),
        pytest.param({"lines": [good_line(rate="NaN")]}, id="a rate that is not a number"),
        pytest.param({"lines": [good_line(tax_minor=10_001)]}, id="tax larger than the line"),
        pytest.param({"lines": [good_line(tax_minor=-5)]}, id="tax of the opposite sign"),
        pytest.param({"lines": [good_line(tax_minor=888.0)]}, id="a fractional minor unit"),
        pytest.param({"lines": [good_line(tax_minor=True)]}, id="a boolean amount"),
        pytest.param({"lines": [good_line(rule_id="")]}, id="no rule id"),
        pytest.param({"lines": [good_line(reason="estimated_last_known_good_rate")]}, id="an estimate"),
        pytest.param({"lines": [good_line()], "currency": "EUR"}, id="another currency"),
        pytest.param({"lines": "none"}, id="lines not a list"),
        pytest.param({"tax": 888}, id="no lines"),
    ],
)
def test_an_answer_that_fails_the_schema_check_is_a_provider_error_not_a_quote(
    fake_provider: FakeTaxProvider, answer: dict[str, Any]
) -> None:
    fake_provider.answer = answer

    with pytest.raises(TaxProviderUnavailable) as raised:
        HttpTaxProvider(fake_provider.config()).quote(nyc_request())

    assert raised.value.code == "provider_malformed_response"


def test_optional_fields_reasons_and_split_jurisdictions_are_read(fake_provider: FakeTaxProvider) -> None:
    fake_provider.answer = {
        "lines": [
            good_line(jurisdiction="US-NY", rate="0.04", tax_minor=400, rule_id="ny-state"),
            good_line(jurisdiction="US-NY-NYC", rate=0.04875, tax_minor=488, rule_id="nyc", note="local"),
            good_line(
                line_ref="support", rate=0, tax_minor=0, taxable_amount_minor=0, reason="product_not_taxable"
            ),
        ]
    }

    quote = HttpTaxProvider(fake_provider.config()).quote(nyc_request(("api", 10_000), ("support", 500)))

    assert [(t.jurisdiction, t.rate, t.tax_minor, t.reason) for t in quote.lines] == [
        ("US-NY", Decimal("0.04"), 400, TaxReason.TAXABLE),
        ("US-NY-NYC", Decimal("0.04875"), 488, TaxReason.TAXABLE),
        ("US-NY", Decimal(0), 0, TaxReason.PRODUCT_NOT_TAXABLE),
    ]
    assert quote.lines[1].note == "local"


def test_a_dropped_connection_and_a_closed_port_are_unavailable(fake_provider: FakeTaxProvider) -> None:
    fake_provider.mode = "drop"
    with pytest.raises(TaxProviderUnavailable) as dropped:
        HttpTaxProvider(fake_provider.config()).quote(nyc_request())
    assert dropped.value.code == "provider_unreachable"

    url = fake_provider.url
    fake_provider.stop()
    with pytest.raises(TaxProviderUnavailable) as refused:
        HttpTaxProvider(fake_provider.config(base_url=url)).quote(nyc_request())
    assert refused.value.code == "provider_unreachable"


# ---- configuration and secrecy -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    ["http://tax.example.com", "ftp://127.0.0.1", "tax.example.com", "https://tax.example.com/?key=1"],
)
def test_the_key_is_only_ever_sent_over_https_except_to_the_loopback(base_url: str) -> None:
    with pytest.raises(ValueError, match="base URL"):
        TaxProviderConfig("faketax", base_url, API_KEY)


def test_the_configuration_and_the_adapter_never_show_the_key() -> None:
    config = TaxProviderConfig("faketax", "https://tax.example.com", API_KEY)

    assert API_KEY not in repr(config)
    assert API_KEY not in repr(HttpTaxProvider(config))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


class MemoryBreakers:
    def __init__(self) -> None:
        self.items: dict[str, tuple[CircuitBreaker, int]] = {}

    def load(self, provider: str, template: CircuitBreaker) -> tuple[CircuitBreaker, int]:
        return self.items.get(provider, (template, 0))

    def save(self, provider: str, breaker: CircuitBreaker, expected_version: int, now: datetime) -> bool:
        self.items[provider] = (breaker, expected_version + 1)
        return True


class MemoryRates:
    def __init__(self) -> None:
        self.rates = LastKnownGoodRates()

    def load(self, provider: str, request: Any) -> LastKnownGoodRates:
        return self.rates

    def save(self, provider: str, seller: Any, learned: LastKnownGoodRates, now: datetime) -> None:
        self.rates = LastKnownGoodRates({**self.rates.rates, **learned.rates})


def test_the_api_key_never_appears_in_logs_metrics_or_errors_whatever_happens(
    fake_provider: FakeTaxProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", stream)
    level = logger.log_level
    logger.setLevel("DEBUG")
    errors: list[str] = []
    try:
        service = TaxationService(
            HttpTaxProvider(fake_provider.config(timeout_seconds=0.3)),
            ENGINE,
            MemoryBreakers(),
            MemoryRates(),
            clock=Clock(),
            breaker=CircuitBreaker(failure_threshold=3),
        )
        service.quote(nyc_request())  # learns
        # A rejection (raised), then three failures that open the breaker.
        for mode, status in [("status", 422), ("status", 401), ("slow", 0), ("garbage", 0)]:
            fake_provider.mode, fake_provider.status, fake_provider.delay = mode, status, 0.5
            try:
                service.quote(nyc_request())
            except Exception as exc:  # the 422 is raised: its text and repr are checked too
                errors.append(f"{exc!s} {exc!r}")
        service.quote(request(where("US", "TX"), ("api", 100)))  # breaker open by now
    finally:
        logger.setLevel(level)

    logs = stream.getvalue()
    assert "tax provider failed" in logs  # something was logged
    assert "tax estimated" in logs
    assert errors
    for text in (logs, capsys.readouterr().out, *errors):
        assert API_KEY not in text
        assert "12-3456789" not in text  # nor the customer's tax id
