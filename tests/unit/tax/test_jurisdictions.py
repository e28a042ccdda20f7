"""Worked examples per jurisdiction, computed by hand: rate x taxable share x line, rounded once per line.

Rounding is half-even to the currency's minor unit (0.125 -> 0.12, 0.135 -> 0.14).
"""

from __future__ import annotations

from datetime import date

import pytest

from billing.domain.tax.errors import TaxError
from billing.domain.tax.model import SellerConfig, TaxReason
from tests.unit.tax.builders import DE_SELLER, UNREGISTERED_US_SELLER, quote, summary, where

# --- United States (state-level rates only) ----------------------------------------------------------


def test_new_york_taxes_saas_at_the_4_percent_state_rate() -> None:
    # 155.19 x 4% = 6.2076 -> 6.21 (local rates are omitted on purpose: state-level table)
    assert summary(quote(where("US", "NY"), ("L1", 15519))) == [
        ("L1", "US-NY", "4%", "155.19", "6.21", "taxable")
    ]


def test_texas_taxes_80_percent_of_saas_at_6_25_percent() -> None:
    # data processing: 20% exempt. 100.00 -> base 80.00, tax 5.00 (5% effective)
    assert summary(quote(where("US", "TX"), ("L1", 10000))) == [
        ("L1", "US-TX", "6.25%", "80.00", "5.00", "taxable")
    ]
    # 155.19 x 0.8 = 124.152 (base shown 124.15); tax on the exact base: 124.152 x 6.25% = 7.7595 -> 7.76
    line = quote(where("US", "TX"), ("L1", 15519)).lines[0]
    assert (line.taxable_amount_minor, line.tax_minor, str(line.taxable_fraction)) == (12415, 776, "0.8")


def test_washington_taxes_saas_at_6_5_percent() -> None:
    # 155.19 x 6.5% = 10.08735 -> 10.09
    assert summary(quote(where("US", "WA"), ("L1", 15519))) == [
        ("L1", "US-WA", "6.5%", "155.19", "10.09", "taxable")
    ]


def test_california_does_not_tax_saas() -> None:
    result = quote(where("US", "CA"), ("L1", 15519))
    assert summary(result) == [("L1", "US-CA", "0%", "0.00", "0.00", "product_not_taxable")]
    assert result.lines[0].rule_id == "US-CA-2017"


def test_connecticut_taxes_saas_as_a_computer_service_at_1_percent() -> None:
    # 155.19 x 1% = 1.5519 -> 1.55
    assert summary(quote(where("US", "CT"), ("L1", 15519))) == [
        ("L1", "US-CT", "1%", "155.19", "1.55", "taxable")
    ]


def test_ohio_taxes_saas_for_business_use_only() -> None:
    assert summary(quote(where("US", "OH"), ("L1", 10000), business=True)) == [
        ("L1", "US-OH", "5.75%", "100.00", "5.75", "taxable")
    ]
    assert quote(where("US", "OH"), ("L1", 10000)).lines[0].reason is TaxReason.PRODUCT_NOT_TAXABLE


def test_professional_services_are_not_taxed_in_new_york() -> None:
    assert (
        quote(where("US", "NY"), ("L1", 10000, "services")).lines[0].reason is TaxReason.PRODUCT_NOT_TAXABLE
    )


def test_no_tax_is_collected_where_the_seller_is_not_registered() -> None:
    result = quote(where("US", "NY"), ("L1", 15519), seller=UNREGISTERED_US_SELLER)
    assert summary(result) == [("L1", "US-NY", "0%", "0.00", "0.00", "not_registered")]


def test_a_us_location_needs_a_state() -> None:
    with pytest.raises(TaxError) as raised:
        quote(where("US"), ("L1", 100))
    assert raised.value.code == "missing_region"


def test_a_state_absent_from_the_tables_has_no_rule() -> None:
    assert quote(where("US", "NV"), ("L1", 100)).lines[0].reason is TaxReason.NO_RULE


def test_a_credit_line_gets_negative_tax() -> None:
    # -10.00 x 4% = -0.40
    assert summary(quote(where("US", "NY"), ("ADJ", -1000))) == [
        ("ADJ", "US-NY", "4%", "-10.00", "-0.40", "taxable")
    ]


# --- European Union VAT ------------------------------------------------------------------------------


def test_germany_b2c_is_19_percent() -> None:
    # A US seller collecting EU VAT through the OSS: 100.00 x 19% = 19.00
    assert summary(quote(where("DE"), ("L1", 10000), currency="EUR")) == [
        ("L1", "DE", "19%", "100.00", "19.00", "taxable")
    ]


def test_germany_to_a_french_business_is_reverse_charged() -> None:
    result = quote(where("FR"), ("L1", 10000), seller=DE_SELLER, tax_id="FR 40 303265045", currency="EUR")
    assert summary(result) == [("L1", "FR", "0%", "100.00", "0.00", "reverse_charge")]
    assert result.lines[0].note.startswith("Reverse charge: VAT to be accounted for by the recipient")
    assert result.decisions[0]["rule_rate"] == "0.2"  # the French rate the customer accounts for


def test_a_domestic_b2b_sale_is_charged_not_reverse_charged() -> None:
    result = quote(where("DE"), ("L1", 10000), seller=DE_SELLER, tax_id="DE123456789", currency="EUR")
    assert summary(result) == [("L1", "DE", "19%", "100.00", "19.00", "taxable")]


def test_a_vat_id_that_does_not_look_valid_for_the_customers_country_is_b2c() -> None:
    # A German number for a French customer: not a French business, so French VAT via OSS (20%).
    for tax_id in ("DE123456789", "FR123"):
        result = quote(where("FR"), ("L1", 10000), tax_id=tax_id, currency="EUR")
        assert summary(result) == [("L1", "FR", "20%", "100.00", "20.00", "taxable")]
    assert result.decisions[0]["customer"]["tax_id"] == {"valid": False, "reason": "bad_format"}


def test_an_eu_seller_registered_only_at_home_charges_home_vat_on_b2c_across_borders() -> None:
    result = quote(where("FR"), ("L1", 10000), seller=DE_SELLER, currency="EUR")
    assert summary(result) == [("L1", "DE", "19%", "100.00", "19.00", "taxable")]
    assert "EUR 10,000" in result.lines[0].note


def test_b2c_professional_services_are_taxed_where_the_supplier_is() -> None:
    from_germany = quote(where("FR"), ("L1", 10000, "services"), seller=DE_SELLER, currency="EUR")
    assert summary(from_germany) == [("L1", "DE", "19%", "100.00", "19.00", "taxable")]
    from_us = quote(where("FR"), ("L1", 10000, "services"), currency="EUR")
    assert summary(from_us) == [("L1", "FR", "0%", "0.00", "0.00", "outside_scope")]


def test_germanys_2020_temporary_rate_applies_by_tax_date() -> None:
    for day, rate in ((date(2020, 6, 30), "19%"), (date(2020, 7, 1), "16%"), (date(2021, 1, 1), "19%")):
        assert summary(quote(where("DE"), ("L1", 10000), currency="EUR", tax_date=day))[0][2] == rate


def test_a_yen_line_is_rounded_to_whole_yen() -> None:
    # 1,234 JPY x 19% = 234.46 -> 234 (JPY has no minor unit)
    assert summary(quote(where("DE"), ("L1", 1234), currency="JPY")) == [
        ("L1", "DE", "19%", "1234", "234", "taxable")
    ]


def test_a_non_eu_seller_without_oss_collects_no_eu_vat() -> None:
    result = quote(where("DE"), ("L1", 10000), seller=UNREGISTERED_US_SELLER, currency="EUR")
    assert result.lines[0].reason is TaxReason.NOT_REGISTERED


# --- United Kingdom, Canada, Australia ---------------------------------------------------------------


def test_uk_vat_is_20_percent() -> None:
    # 49.00 x 20% = 9.80
    assert summary(quote(where("GB"), ("L1", 4900), currency="GBP")) == [
        ("L1", "GB", "20%", "49.00", "9.80", "taxable")
    ]


def test_a_uk_business_buying_from_abroad_is_reverse_charged() -> None:
    result = quote(where("GB"), ("L1", 4900), tax_id="GB123456789", currency="GBP")
    assert result.lines[0].reason is TaxReason.REVERSE_CHARGE


def test_ontario_hst_is_13_percent() -> None:
    assert summary(quote(where("CA", "ON"), ("L1", 10000), currency="CAD")) == [
        ("L1", "CA-ON", "13%", "100.00", "13.00", "taxable")
    ]


def test_nova_scotia_hst_drops_from_15_to_14_percent_on_2025_04_01() -> None:
    before = quote(where("CA", "NS"), ("L1", 10000), currency="CAD", tax_date=date(2025, 3, 31))
    after = quote(where("CA", "NS"), ("L1", 10000), currency="CAD", tax_date=date(2025, 4, 1))
    assert summary(before) == [("L1", "CA-NS", "15%", "100.00", "15.00", "taxable")]
    assert summary(after) == [("L1", "CA-NS", "14%", "100.00", "14.00", "taxable")]
    assert (before.lines[0].rule_id, after.lines[0].rule_id) == ("CA-NS-HST-2010", "CA-NS-HST-2025")
    assert (before.decisions[0]["rule_effective_to"], after.decisions[0]["rule_effective_from"]) == (
        "2025-04-01",
        "2025-04-01",
    )


@pytest.mark.parametrize("province", ["NB", "NL", "PE"])
def test_atlantic_hst_is_15_percent(province: str) -> None:
    assert summary(quote(where("CA", province), ("L1", 10000), currency="CAD"))[0][2:5] == (
        "15%",
        "100.00",
        "15.00",
    )


def test_quebec_charges_gst_and_qst_side_by_side() -> None:
    # GST 100.00 x 5% = 5.00; QST 100.00 x 9.975% = 9.975 -> 9.98 (half-even: 997.5 cents -> 998)
    assert summary(quote(where("CA", "QC"), ("L1", 10000), currency="CAD")) == [
        ("L1", "CA", "5%", "100.00", "5.00", "taxable"),
        ("L1", "CA-QC", "9.975%", "100.00", "9.98", "taxable"),
    ]


def test_british_columbia_pst_needs_its_own_registration() -> None:
    # Registered for GST (CA) but not for BC PST (CA-BC): GST only.
    assert summary(quote(where("CA", "BC"), ("L1", 10000), currency="CAD")) == [
        ("L1", "CA", "5%", "100.00", "5.00", "taxable"),
        ("L1", "CA-BC", "0%", "0.00", "0.00", "not_registered"),
    ]


def test_alberta_has_gst_only() -> None:
    assert summary(quote(where("CA", "AB"), ("L1", 10000), currency="CAD")) == [
        ("L1", "CA", "5%", "100.00", "5.00", "taxable")
    ]


def test_australian_gst_is_10_percent() -> None:
    # 99.99 x 10% = 9.999 -> 10.00
    assert summary(quote(where("AU"), ("L1", 9999), currency="AUD")) == [
        ("L1", "AU", "10%", "99.99", "10.00", "taxable")
    ]


def test_an_australian_business_with_an_abn_is_not_charged_gst_by_a_foreign_seller() -> None:
    result = quote(where("AU"), ("L1", 9999), tax_id="51 824 753 556", currency="AUD")
    assert summary(result) == [("L1", "AU", "0%", "99.99", "0.00", "reverse_charge")]
    # ...but an ABN with wrong check digits does not make a business
    assert quote(where("AU"), ("L1", 9999), tax_id="51824753557", currency="AUD").lines[0].tax_minor == 1000


def test_an_australian_seller_charges_gst_to_australian_businesses() -> None:
    seller = SellerConfig("AU", frozenset({"AU"}))
    result = quote(where("AU"), ("L1", 9999), tax_id="51824753556", seller=seller, currency="AUD")
    assert result.lines[0].tax_minor == 1000


# --- customers and products that are never taxed -----------------------------------------------------


def test_an_exempt_customer_pays_no_tax_and_the_reason_says_why() -> None:
    result = quote(where("US", "NY"), ("L1", 15519), exempt=True, exemption_reason="resale certificate")
    assert summary(result) == [("L1", "US-NY", "0%", "0.00", "0.00", "customer_exempt")]
    assert result.lines[0].note == "resale certificate"


def test_the_exempt_tax_code_is_never_taxed() -> None:
    assert (
        quote(where("GB"), ("L1", 4900, "exempt"), currency="GBP").lines[0].reason is TaxReason.EXEMPT_PRODUCT
    )


def test_an_unknown_tax_code_is_an_error_not_a_guess() -> None:
    with pytest.raises(TaxError) as raised:
        quote(where("US", "NY"), ("L1", 100, "hardware"))
    assert raised.value.code == "unknown_tax_code"


def test_a_country_outside_the_tables_has_no_rule() -> None:
    assert summary(quote(where("JP"), ("L1", 1000), currency="JPY")) == [
        ("L1", "JP", "0%", "0", "0", "no_rule")
    ]
