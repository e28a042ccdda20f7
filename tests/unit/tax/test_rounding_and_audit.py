"""Per-line rounding, the tax line and audit record shapes."""

from __future__ import annotations

import json

from billing.domain import canonical_json
from billing.domain.rating.money import Currency
from billing.domain.tax.rules_engine import tax_amounts
from tests.unit.tax.builders import DE_SELLER, ENGINE, quote, request, where

USD = Currency.of("USD")


def test_tax_is_rounded_per_line_never_on_the_sum() -> None:
    # Three lines of 0.12 in New York: 0.0048 each -> 0.00 each. Taxing the 0.36 sum would give 0.01.
    result = quote(where("US", "NY"), ("a", 12), ("b", 12), ("c", 12))
    assert [line.tax_minor for line in result.lines] == [0, 0, 0]
    assert result.tax_minor == 0


def test_a_half_cent_of_tax_goes_to_the_even_cent() -> None:
    # Pennsylvania 6%: 0.25 -> 0.015 -> 0.02; 0.75 -> 0.045 -> 0.04 (not 0.05)
    result = quote(where("US", "PA"), ("a", 25), ("b", 75))
    assert [line.tax_minor for line in result.lines] == [2, 4]


def test_tax_amounts_round_the_exact_product_once() -> None:
    from decimal import Decimal

    assert tax_amounts(15519, Decimal("0.8"), Decimal("0.0625"), USD) == (12415, 776)
    assert tax_amounts(-15519, Decimal("0.8"), Decimal("0.0625"), USD) == (-12415, -776)  # symmetric


def test_a_tax_line_reads_as_an_invoice_tax_line() -> None:
    result = quote(where("US", "TX"), ("L1", 10000))
    assert result.lines[0].to_json(result.currency) == {
        "type": "tax",
        "line_ref": "L1",
        "jurisdiction": "US-TX",
        "tax_type": "sales_tax",
        "rate": "0.0625",
        "taxable_fraction": "0.8",
        "taxable_amount": "80.00",
        "amount": "5.00",
        "amount_minor": 500,
        "reason": "taxable",
        "rule_id": "US-TX-1990",
        "tax_estimated": False,
        "description": "SALES_TAX US-TX 6.25% on 80% of the line",
    }


def test_every_decision_has_an_audit_record_naming_the_rule_and_its_effective_dates() -> None:
    result = quote(where("FR"), ("L1", 10000), seller=DE_SELLER, tax_id="FR40303265045", currency="EUR")
    (decision,) = result.decisions
    assert decision == {
        "engine": "rules",
        "tables_digest": ENGINE.tables.digest,
        "document_id": "inv_test",
        "line_ref": "L1",
        "amount_minor": 10000,
        "currency": "EUR",
        "tax_code": "saas",
        "tax_date": "2026-03-31",
        "location": {"country": "FR", "region": None},
        "customer": {"exempt": False, "business": True, "tax_id": {"valid": True, "reason": "format_ok"}},
        "seller": {"country": "DE", "registrations": ["DE"]},
        "jurisdiction": "FR",
        "tax_type": "vat",
        "rate": "0",
        "taxable_fraction": "1",
        "taxable_amount_minor": 10000,
        "tax_minor": 0,
        "reason": "reverse_charge",
        "estimated": False,
        "note": result.lines[0].note,
        "rule_id": "FR-VAT-STD",
        "rule_source": "eu_vat.json",
        "rule_effective_from": "2020-01-01",
        "rule_effective_to": None,
        "rule_rate": "0.2",
    }
    # plain data: it serializes, and the customer's tax number is not in it
    assert "303265045" not in canonical_json.dumps(dict(decision))
    json.dumps(dict(decision))


def test_a_quote_is_the_same_for_the_same_request() -> None:
    req = request(where("CA", "QC"), ("L1", 10000), ("L2", 333), currency="CAD")
    assert ENGINE.quote(req) == ENGINE.quote(req)
