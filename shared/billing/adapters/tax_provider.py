"""An external tax provider (Avalara/TaxJar style HTTP JSON API) behind the `TaxEngine` port.

    POST {base_url}/v1/quotes      Authorization: Bearer <api key>      Idempotency-Key: <doc>:<digest>
    {"document_id", "currency", "tax_date", "seller": {...}, "customer": {...}, "lines": [...]}
    -> 200 {"quote_id"?, "currency"?, "lines": [{"line_ref", "jurisdiction", "rate", "taxable_amount_minor",
            "tax_minor", "rule_id", "tax_type"?, "taxable_fraction"?, "reason"?, "note"?}, ...]}

Failures, by what the caller should do about them:
- `TaxProviderUnavailable` (a `TaxProviderFailed`, transient): timeout (one deadline covers connect, send
  and read), connection error, 5xx, 408/429, 401/403 (a revoked or wrong key is an outage of the provider
  for every customer, not a fault of this request), any other unexpected status, and an answer that does
  not pass the schema check. The breaker counts it; the last-known-good rate answers instead.
- `TaxProviderRejected` (a `TaxError`, not transient): any other 4xx. The provider is up and says this
  request cannot be taxed (an unknown address, a bad tax code): retrying or estimating would only bill a
  guess the provider has already refused, so the close of this customer fails until the data is fixed.

The API key is only ever put in the Authorization header: never in a message, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from billing.domain.tax.errors import TaxError, TaxProviderFailed
from billing.domain.tax.model import (
    TaxableLine,
    TaxLine,
    TaxQuote,
    TaxReason,
    TaxRequest,
    decision_record,
)

QUOTES_PATH = "/v1/quotes"
DEFAULT_TIMEOUT_SECONDS = 2.0
MAX_RESPONSE_BYTES = 1024 * 1024
_READ_CHUNK = 64 * 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Statuses that say the provider (or our account with it) is not serving now, whatever the request.
_UNAVAILABLE_4XX = {
    401: "provider_unauthorized",
    403: "provider_unauthorized",
    408: "provider_timeout",
    429: "provider_throttled",
}
_PROVIDER_REASONS = frozenset(reason.value for reason in TaxReason if reason is not TaxReason.ESTIMATED)


class TaxProviderUnavailable(TaxProviderFailed):
    """The provider did not give a usable answer in time (see the module docstring); retry later.

    Codes: provider_timeout, provider_unreachable, provider_server_error, provider_throttled,
    provider_unauthorized, provider_unexpected_status, provider_malformed_response.
    """

    code = "tax_provider_unavailable"


class TaxProviderRejected(TaxError):
    """The provider answered and refused this request (a 4xx): fix the data, retrying will not help.

    `provider_code` is the provider's own error code when it gave a plain one (never its message, which
    may echo customer data).
    """

    code = "tax_provider_rejected"

    def __init__(self, message: str, *, status: int, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.provider_code = provider_code


@dataclass(frozen=True)
class TaxProviderConfig:
    """Where and how to reach one provider. `timeout_seconds` bounds a whole call (connect + send + read)."""

    name: str
    base_url: str
    api_key: str = field(repr=False)
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_response_bytes: int = MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError("a tax provider name is 1-32 lower-case letters, digits, '-' or '_'")
        url = urlsplit(self.base_url)
        if url.scheme not in ("https", "http") or not url.hostname:
            raise ValueError("the tax provider base URL must be an absolute https:// URL")
        if url.scheme == "http" and url.hostname not in _LOOPBACK_HOSTS:
            # The bearer key must never cross a network in clear text; plain http is for a local fake.
            raise ValueError("the tax provider base URL must use https (http only on the loopback)")
        if url.query or url.fragment:
            raise ValueError("the tax provider base URL takes no query or fragment")
        if not self.api_key:
            raise ValueError("the tax provider needs an API key")
        if not 0 < self.timeout_seconds <= 30:
            raise ValueError("the tax provider timeout must be in (0, 30] seconds")


class HttpTaxProvider:
    """`TaxEngine` over the provider's HTTP API; stateless, so one instance serves every invocation."""

    def __init__(self, config: TaxProviderConfig) -> None:
        self._config = config
        url = urlsplit(config.base_url)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port
        self._path = url.path.rstrip("/") + QUOTES_PATH
        self._ssl = ssl.create_default_context() if self._https else None

    @property
    def name(self) -> str:
        return self._config.name

    def __repr__(self) -> str:
        return f"HttpTaxProvider(name={self._config.name!r}, base_url={self._config.base_url!r})"

    def quote(self, request: TaxRequest) -> TaxQuote:
        body = json.dumps(quote_request_json(request), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Authorization": f"Bearer {self._config.api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "usage-billing-tax/1",
        }
        if request.document_id:
            # The document id alone would replay a stale answer for a document re-quoted with other
            # lines; with the body's digest a retry of the same request is still recognised as one.
            digest = hashlib.sha256(body).hexdigest()[:16]
            headers["Idempotency-Key"] = f"{request.document_id}:{digest}"
        status, payload = self._post(body, headers)
        if 200 <= status < 300:
            return parse_quote(self._config.name, request, payload)
        raise self._status_error(status, payload)

    def _post(self, body: bytes, headers: Mapping[str, str]) -> tuple[int, bytes]:
        """(status, body), all within one deadline; every transport failure is `TaxProviderUnavailable`."""
        timeout = self._config.timeout_seconds
        deadline = time.monotonic() + timeout
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        try:
            connection.connect()
            _arm(connection, deadline)
            connection.request("POST", self._path, body=body, headers=dict(headers))
            _arm(connection, deadline)
            response = connection.getresponse()
            chunks: list[bytes] = []
            size = 0
            while True:
                _arm(connection, deadline)
                chunk = response.read1(_READ_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self._config.max_response_bytes:
                    raise _malformed(self._config.name, "the answer is larger than allowed")
                chunks.append(chunk)
            return response.status, b"".join(chunks)
        except TimeoutError as exc:  # socket.timeout is TimeoutError since 3.10
            raise _unavailable(f"no answer within {timeout:g} s", "provider_timeout", self.name) from exc
        except (OSError, http.client.HTTPException) as exc:
            detail = f"unreachable ({type(exc).__name__})"
            raise _unavailable(detail, "provider_unreachable", self.name) from exc
        finally:
            connection.close()

    def _status_error(self, status: int, payload: bytes) -> TaxProviderUnavailable | TaxProviderRejected:
        name = self._config.name
        if 500 <= status < 600:
            return _unavailable(f"server error {status}", "provider_server_error", name)
        if status in _UNAVAILABLE_4XX:
            return _unavailable(f"status {status}", _UNAVAILABLE_4XX[status], name)
        if 400 <= status < 500:
            provider_code = _provider_error_code(payload)
            detail = f" ({provider_code})" if provider_code else ""
            return TaxProviderRejected(
                f"tax provider {name} rejected the request: status {status}{detail}",
                status=status,
                provider_code=provider_code,
            )
        return _unavailable(f"unexpected status {status}", "provider_unexpected_status", name)


def quote_request_json(request: TaxRequest) -> dict[str, Any]:
    """The provider's request body: amounts in minor units of `currency`, locations per line."""
    customer = request.customer
    return {
        "document_id": request.document_id,
        "currency": request.currency.code,
        "currency_exponent": request.currency.exponent,
        "tax_date": request.tax_date.isoformat(),
        "seller": {
            "country": request.seller.country,
            "registrations": sorted(request.seller.registrations),
        },
        "customer": {
            "location": customer.location.to_json(),
            "tax_id": customer.tax_id,
            "business": customer.is_business,
            "exempt": customer.exempt,
            "exemption_reason": customer.exemption_reason,
        },
        "lines": [_line_json(request, line) for line in request.lines],
    }


def _line_json(request: TaxRequest, line: TaxableLine) -> dict[str, Any]:
    return {
        "ref": line.ref,
        "amount_minor": line.amount_minor,
        "tax_code": request.tax_code_of(line),
        "location": request.location_of(line).to_json(),
    }


def parse_quote(provider: str, request: TaxRequest, payload: bytes) -> TaxQuote:
    """The provider's answer as a `TaxQuote`, or `TaxProviderUnavailable` if it is not the agreed shape.

    Every request line must be answered (a line the provider skipped would go untaxed), no unknown line
    may appear, and no amount may exceed its line's: anything else is a malformed answer, not a quote.
    """
    try:
        data = json.loads(payload, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _malformed(provider, "the answer is not JSON") from exc
    if not isinstance(data, dict) or not isinstance(data.get("lines"), list):
        raise _malformed(provider, "the answer has no list of lines")
    currency = data.get("currency")
    if currency is not None and currency != request.currency.code:
        raise _malformed(provider, "the answer is in another currency")
    quote_id = data.get("quote_id")
    if quote_id is not None and not isinstance(quote_id, str):
        raise _malformed(provider, "quote_id is not a string")
    lines_by_ref = {line.ref: line for line in request.lines}
    tax_lines: list[TaxLine] = []
    decisions: list[dict[str, Any]] = []
    for index, raw in enumerate(data["lines"]):
        try:
            source = lines_by_ref[_text(raw, "line_ref")]
            tax = _tax_line(raw, source)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise _malformed(provider, f"line {index} is not a valid tax line") from exc
        tax_lines.append(tax)
        decisions.append(_audit(provider, quote_id, request, source, tax))
    missing = [ref for ref in lines_by_ref if not any(tax.line_ref == ref for tax in tax_lines)]
    if missing:
        raise _malformed(provider, f"{len(missing)} request line(s) have no tax line")
    order = {ref: index for index, ref in enumerate(lines_by_ref)}
    ranked = sorted(range(len(tax_lines)), key=lambda i: order[tax_lines[i].line_ref])  # stable
    return TaxQuote(
        request.currency,
        tuple(tax_lines[i] for i in ranked),
        tuple(decisions[i] for i in ranked),
        provider,
    )


def _tax_line(raw: Any, source: TaxableLine) -> TaxLine:
    if not isinstance(raw, dict):
        raise TypeError("a tax line is an object")
    rate = _fraction(raw["rate"])
    fraction = _fraction(raw.get("taxable_fraction", Decimal(1)))
    taxable = _minor(raw["taxable_amount_minor"], source)
    tax_minor = _minor(raw["tax_minor"], source)
    reason = raw.get("reason", TaxReason.TAXABLE.value)
    if reason not in _PROVIDER_REASONS:
        raise ValueError("unknown reason")
    return TaxLine(
        line_ref=source.ref,
        jurisdiction=_text(raw, "jurisdiction"),
        rate=rate,
        taxable_amount_minor=taxable,
        tax_minor=tax_minor,
        reason=TaxReason(reason),
        rule_id=_text(raw, "rule_id"),
        estimated=False,
        tax_type=_optional_text(raw, "tax_type"),
        taxable_fraction=fraction,
        note=_optional_text(raw, "note"),
    )


def _text(raw: Any, name: str) -> str:
    value = raw[name]
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{name} is not a non-empty string")
    return value


def _optional_text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 500:
        raise ValueError(f"{name} is not a string")
    return value


def _fraction(value: Any) -> Decimal:
    """A rate or fraction: a JSON number or a decimal string, in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError("a rate is a number or a decimal string")
    number = Decimal(value)
    if not number.is_finite() or not 0 <= number <= 1:
        raise ValueError("a rate is between 0 and 1")
    return number


def _minor(value: Any, source: TaxableLine) -> int:
    """An amount of the line in minor units: an integer of the line's sign, no larger than the line."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an amount is integer minor units")
    if abs(value) > abs(source.amount_minor) or (value and (value < 0) != (source.amount_minor < 0)):
        raise ValueError("an amount exceeds its line or has the opposite sign")
    return value


def _audit(
    provider: str, quote_id: str | None, request: TaxRequest, line: TaxableLine, tax: TaxLine
) -> dict[str, Any]:
    return {
        **decision_record(provider, request, line, tax),
        "provider_quote_id": quote_id,
        "customer": {
            "exempt": request.customer.exempt,
            "business": request.customer.is_business,
            "tax_id_sent": bool(request.customer.tax_id),
        },
        "seller": {"country": request.seller.country, "registrations": sorted(request.seller.registrations)},
        "note": tax.note,
    }


def _provider_error_code(payload: bytes) -> str | None:
    """The provider's machine error code (`{"error": {"code": ...}}` or `{"code": ...}`) if plain."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else data.get("code")
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else None


def _arm(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Bound the next blocking socket operation by what is left of the call's deadline."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("tax provider deadline passed")
    if connection.sock is not None:
        connection.sock.settimeout(remaining)


def _unavailable(detail: str, code: str, provider: str | None = None) -> TaxProviderUnavailable:
    who = f"tax provider {provider}" if provider else "tax provider"
    return TaxProviderUnavailable(f"{who}: {detail}", code=code)


def _malformed(provider: str, detail: str) -> TaxProviderUnavailable:
    return _unavailable(f"malformed answer: {detail}", "provider_malformed_response", provider)
