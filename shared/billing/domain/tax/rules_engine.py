"""The built-in rules engine: taxes each invoice line from the jurisdiction tables.

Decision order for a line (the first that applies decides; each gives a `TaxReason`):
1. customer exempt -> zero, customer_exempt; 2. tax code "exempt" -> zero, exempt_product;
3. no rule for the location at the tax date -> zero, no_rule (a US/CA location without a region is an
   error: the tax depends on it);
4. per rule in force (Canada may have two: GST and QST/PST): the product not taxable there -> zero,
   product_not_taxable; then by regime:
   - US sales tax, Canada GST/HST/PST/QST: charged where the seller is registered, else not_registered.
     No B2B special case (a registered business recovers it as input credit; resale is an exemption).
   - EU VAT, UK VAT, Australian GST: a business customer with a valid-looking tax id of its own country,
     buying from a seller established in another country -> reverse_charge (rate 0, the whole line as
     taxable base, the customer accounts for the tax). Otherwise charged at the customer's country rate
     where the seller is registered there (for EU VAT also via "EU-OSS"). EU refinements:
     * "services" (performed by people) sold B2C across borders are taxed where the supplier is
       established (Art. 45 of Directive 2006/112/EC): the seller's home rate for an EU seller,
       outside_scope for a seller outside the EU;
     * an EU seller registered only at home charges its home rate on B2C SaaS to other member states:
       the treatment below the EU-wide EUR 10,000 distance-selling threshold (Art. 59c). Whether the
       seller is below it is not known here; above it the seller must register for OSS (configuration).
Rounding: once per line and jurisdiction, half-even to the currency's minor unit, on the exact product
line amount x taxable fraction x rate. The invoice's tax is the sum of the rounded lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.domain.rating.money import Currency, decimal_text, exact_arithmetic, to_minor
from billing.domain.tax.errors import TaxError
from billing.domain.tax.model import (
    EXEMPT_TAX_CODE,
    TaxableLine,
    TaxLine,
    TaxLocation,
    TaxQuote,
    TaxReason,
    TaxRequest,
    decision_record,
)
from billing.domain.tax.tables import Regime, Taxability, TaxRule, TaxTables, builtin_tables
from billing.domain.tax.tax_ids import TaxIdCheck, check_tax_id

ENGINE_NAME = "rules"
EU_OSS = "EU-OSS"
# Tax codes whose B2C place of supply in the EU is where the supplier is established (Art. 45).
SUPPLIER_LOCATION_CODES = frozenset({"services"})

REVERSE_CHARGE_NOTES = {
    Regime.EU_VAT: "Reverse charge: VAT to be accounted for by the recipient "
    "(Art. 196 Directive 2006/112/EC)",
    Regime.GB_VAT: "Reverse charge: the customer accounts for the VAT to HMRC",
    Regime.AU_GST: "Supply to a GST-registered Australian business by a non-resident: no GST charged; "
    "the recipient accounts for any GST under the reverse charge",
}
ORIGIN_NOTE = (
    "B2C supply across EU borders by a seller registered only at home: VAT of the supplier's member state "
    "(below the EU-wide EUR 10,000 threshold, Art. 59c); above it the seller must register for OSS"
)
SERVICES_ORIGIN_NOTE = "B2C services: place of supply is the supplier's member state (Art. 45)"
SERVICES_OUTSIDE_NOTE = "B2C services by a supplier outside the EU are outside the scope of EU VAT (Art. 45)"


@dataclass(frozen=True)
class _Result:
    line: TaxLine
    rule: TaxRule | None


class RulesEngine:
    """`TaxEngine` over jurisdiction tables (the shipped ones unless others are given)."""

    name = ENGINE_NAME

    def __init__(self, tables: TaxTables | None = None) -> None:
        self.tables = tables or builtin_tables()

    def quote(self, request: TaxRequest) -> TaxQuote:
        lines: list[TaxLine] = []
        decisions: list[dict[str, Any]] = []
        for line in request.lines:
            id_check = check_tax_id(request.customer.tax_id, request.location_of(line).country, self.tables)
            for result in self._decide(request, line, id_check):
                lines.append(result.line)
                decisions.append(self._audit(request, line, id_check, result))
        return TaxQuote(request.currency, tuple(lines), tuple(decisions), ENGINE_NAME)

    # --- decisions ---------------------------------------------------------------------------------

    def _decide(self, request: TaxRequest, line: TaxableLine, id_check: TaxIdCheck) -> list[_Result]:
        location = request.location_of(line)
        code = request.tax_code_of(line)
        if code not in self.tables.tax_codes:
            raise TaxError(
                f"unknown tax code {code!r} on line {line.ref}: "
                f"expected one of {sorted(self.tables.tax_codes)}",
                code="unknown_tax_code",
            )
        customer = request.customer
        if customer.exempt:
            note = customer.exemption_reason or "exempt customer"
            return [_zero(line, location.code, TaxReason.CUSTOMER_EXEMPT, "customer_exempt", note=note)]
        if code == EXEMPT_TAX_CODE:
            return [_zero(line, location.code, TaxReason.EXEMPT_PRODUCT, "exempt_product")]
        if location.region is None and self.tables.has_regional_rules(location.country):
            raise TaxError(
                f"a {location.country} location needs a region (state or province) to be taxed",
                code="missing_region",
            )
        rules = self.tables.rules_for(location, request.tax_date)
        if not rules:
            return [_zero(line, location.code, TaxReason.NO_RULE, "no_rule")]
        business = customer.is_business
        results = []
        for rule in rules:
            taxability = rule.taxability_for(code, business=business)
            if taxability.fraction == 0 or rule.rate_for(taxability) == 0:
                results.append(_zero_for(line, rule, TaxReason.PRODUCT_NOT_TAXABLE, note=rule.note))
            elif rule.regime.reverse_charges_b2b:
                results.append(self._vat(request, line, rule, taxability, code, id_check))
            elif request.seller.registered_for(rule.registration):
                results.append(_charge(line, rule, taxability, request.currency))
            else:
                results.append(_zero_for(line, rule, TaxReason.NOT_REGISTERED))
        return results

    def _vat(
        self,
        request: TaxRequest,
        line: TaxableLine,
        rule: TaxRule,
        taxability: Taxability,
        code: str,
        id_check: TaxIdCheck,
    ) -> _Result:
        seller = request.seller
        cross_border = seller.country != rule.country
        if id_check.valid and cross_border:
            return _zero_for(
                line,
                rule,
                TaxReason.REVERSE_CHARGE,
                note=REVERSE_CHARGE_NOTES[rule.regime],
                taxable_amount_minor=line.amount_minor,
            )
        eu = rule.regime is Regime.EU_VAT
        seller_in_eu = seller.country in self.tables.countries(Regime.EU_VAT)
        if eu and cross_border and code in SUPPLIER_LOCATION_CODES:
            if not seller_in_eu:
                return _zero_for(line, rule, TaxReason.OUTSIDE_SCOPE, note=SERVICES_OUTSIDE_NOTE)
            return self._home_vat(request, line, code, SERVICES_ORIGIN_NOTE) or _zero_for(
                line, rule, TaxReason.NOT_REGISTERED
            )
        if seller.registered_for(rule.registration, *((EU_OSS,) if eu else ())):
            return _charge(line, rule, taxability, request.currency)
        if eu and cross_border and seller_in_eu:
            home = self._home_vat(request, line, code, ORIGIN_NOTE)
            if home is not None:
                return home
        return _zero_for(line, rule, TaxReason.NOT_REGISTERED)

    def _home_vat(self, request: TaxRequest, line: TaxableLine, code: str, note: str) -> _Result | None:
        """VAT of the seller's own member state, when the seller is registered there."""
        seller = request.seller
        if not seller.registered_for(seller.country):
            return None
        home_rules = self.tables.rules_for(TaxLocation(seller.country), request.tax_date)
        if not home_rules:
            return None
        home = home_rules[0]
        taxability = home.taxability_for(code, business=request.customer.is_business)
        if taxability.fraction == 0:
            return _zero_for(line, home, TaxReason.PRODUCT_NOT_TAXABLE, note=home.note)
        return _charge(line, home, taxability, request.currency, note=note)

    # --- audit ---------------------------------------------------------------------------------------

    def _audit(
        self, request: TaxRequest, line: TaxableLine, id_check: TaxIdCheck, result: _Result
    ) -> dict[str, Any]:
        tax = result.line
        record: dict[str, Any] = {
            **decision_record(ENGINE_NAME, request, line, tax),
            "tables_digest": self.tables.digest,
            "customer": {
                "exempt": request.customer.exempt,
                "business": request.customer.is_business,
                "tax_id": id_check.to_json(),  # the check's outcome, never the number itself
            },
            "seller": {
                "country": request.seller.country,
                "registrations": sorted(request.seller.registrations),
            },
            "note": tax.note,
            "rule_source": None,
            "rule_effective_from": None,
            "rule_effective_to": None,
        }
        if result.rule is not None:
            record.update(result.rule.audit())
            record["rule_rate"] = decimal_text(result.rule.rate)
        return record


def tax_amounts(amount_minor: int, fraction: Decimal, rate: Decimal, currency: Currency) -> tuple[int, int]:
    """(taxable base, tax) in minor units, each rounded once, half-even, from the exact products."""
    with exact_arithmetic():
        taxable = Decimal(amount_minor).scaleb(-currency.exponent) * fraction
        tax = taxable * rate
    return to_minor(taxable, currency), to_minor(tax, currency)


def _charge(
    line: TaxableLine, rule: TaxRule, taxability: Taxability, currency: Currency, *, note: str = ""
) -> _Result:
    rate = rule.rate_for(taxability)
    taxable, tax = tax_amounts(line.amount_minor, taxability.fraction, rate, currency)
    return _Result(
        TaxLine(
            line_ref=line.ref,
            jurisdiction=rule.jurisdiction,
            rate=rate,
            taxable_amount_minor=taxable,
            tax_minor=tax,
            reason=TaxReason.TAXABLE,
            rule_id=rule.rule_id,
            tax_type=rule.tax_type,
            taxable_fraction=taxability.fraction,
            note=note,
        ),
        rule,
    )


def _zero_for(
    line: TaxableLine, rule: TaxRule, reason: TaxReason, *, note: str = "", taxable_amount_minor: int = 0
) -> _Result:
    return _Result(
        TaxLine(
            line_ref=line.ref,
            jurisdiction=rule.jurisdiction,
            rate=Decimal(0),
            taxable_amount_minor=taxable_amount_minor,
            tax_minor=0,
            reason=reason,
            rule_id=rule.rule_id,
            tax_type=rule.tax_type,
            taxable_fraction=Decimal(1) if taxable_amount_minor else Decimal(0),
            note=note,
        ),
        rule,
    )


def _zero(
    line: TaxableLine, jurisdiction: str, reason: TaxReason, rule_id: str, *, note: str = ""
) -> _Result:
    return _Result(
        TaxLine(
            line_ref=line.ref,
            jurisdiction=jurisdiction,
            rate=Decimal(0),
            taxable_amount_minor=0,
            tax_minor=0,
            reason=reason,
            rule_id=rule_id,
            taxable_fraction=Decimal(0),
            note=note,
        ),
        None,
    )
