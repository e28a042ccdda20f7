"""Builders for tax tests: sellers, customers, requests and a readable summary of a quote."""

from __future__ import annotations

from datetime import date

from billing.domain.rating.money import Currency, decimal_text, format_major
from billing.domain.tax.model import SellerConfig, TaxableLine, TaxCustomer, TaxLocation, TaxQuote, TaxRequest
from billing.domain.tax.rules_engine import RulesEngine

ENGINE = RulesEngine()
TAX_DATE = date(2026, 3, 31)
# A US seller registered in the states it has nexus in, for EU B2C via the (non-Union) OSS, in the UK,
# for Canadian GST/HST and QST, and for Australian GST.
US_SELLER = SellerConfig(
    "US",
    frozenset(
        {"US-NY", "US-TX", "US-WA", "US-PA", "US-OH", "US-CT", "US-CA", "EU-OSS", "GB", "CA", "CA-QC", "AU"}
    ),
)
DE_SELLER = SellerConfig("DE", frozenset({"DE"}))
UNREGISTERED_US_SELLER = SellerConfig("US")


def where(country: str, region: str | None = None) -> TaxLocation:
    return TaxLocation(country, region)


def request(
    location: TaxLocation,
    *lines: tuple[str, int] | tuple[str, int, str],
    seller: SellerConfig = US_SELLER,
    tax_id: str | None = None,
    exempt: bool = False,
    exemption_reason: str | None = None,
    business: bool | None = None,
    currency: str = "USD",
    tax_date: date = TAX_DATE,
) -> TaxRequest:
    """A request with lines given as (ref, amount in minor units[, tax code]); default code saas."""
    return TaxRequest(
        seller=seller,
        customer=TaxCustomer(location, tax_id, exempt, exemption_reason, business),
        currency=Currency.of(currency),
        tax_date=tax_date,
        lines=tuple(TaxableLine(line[0], line[1], line[2] if len(line) > 2 else None) for line in lines),
        document_id="inv_test",
    )


def quote(
    location: TaxLocation, *lines: tuple[str, int] | tuple[str, int, str], **kwargs: object
) -> TaxQuote:
    return ENGINE.quote(request(location, *lines, **kwargs))  # type: ignore[arg-type]


def summary(result: TaxQuote) -> list[tuple[str, str, str, str, str, str]]:
    """(line, jurisdiction, rate %, taxable base, tax, reason) per tax line, amounts in major units."""
    return [
        (
            line.line_ref,
            line.jurisdiction,
            decimal_text(line.rate * 100) + "%",
            format_major(line.taxable_amount_minor, result.currency),
            format_major(line.tax_minor, result.currency),
            line.reason.value,
        )
        for line in result.lines
    ]
