"""The shipped jurisdiction tables, their validation, and tax id formats."""

from __future__ import annotations

import copy
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.domain.tax.errors import InvalidTaxTable
from billing.domain.tax.model import TaxLocation
from billing.domain.tax.tables import Regime, TaxTables, builtin_tables
from billing.domain.tax.tax_ids import abn_checksum_ok, check_tax_id

TABLES = builtin_tables()
EU_STANDARD_RATES_2026 = {
    "AT": "0.20", "BE": "0.21", "BG": "0.20", "CY": "0.19", "CZ": "0.21", "DE": "0.19", "DK": "0.25",
    "EE": "0.24", "ES": "0.21", "FI": "0.255", "FR": "0.20", "GR": "0.24", "HR": "0.25", "HU": "0.27",
    "IE": "0.23", "IT": "0.22", "LT": "0.21", "LU": "0.17", "LV": "0.21", "MT": "0.18", "NL": "0.21",
    "PL": "0.23", "PT": "0.23", "RO": "0.21", "SE": "0.25", "SI": "0.22", "SK": "0.23",
}  # fmt: skip


def test_all_27_member_states_have_a_standard_rate_in_force_and_a_vat_id_format() -> None:
    assert TABLES.countries(Regime.EU_VAT) == set(EU_STANDARD_RATES_2026)
    for country, rate in EU_STANDARD_RATES_2026.items():
        (rule,) = TABLES.rules_for(TaxLocation(country), date(2026, 1, 1))
        assert rule.rate == Decimal(rate), country
        assert country in TABLES.tax_ids


@pytest.mark.parametrize(
    ("country", "day", "rate"),
    [
        ("FI", date(2024, 8, 31), "0.24"),
        ("FI", date(2024, 9, 1), "0.255"),
        ("SK", date(2024, 12, 31), "0.20"),
        ("EE", date(2024, 6, 1), "0.22"),
        ("RO", date(2025, 8, 1), "0.21"),
        ("LU", date(2023, 6, 1), "0.16"),
        ("IE", date(2020, 12, 1), "0.21"),
    ],
)
def test_rate_changes_apply_from_their_effective_date(country: str, day: date, rate: str) -> None:
    (rule,) = TABLES.rules_for(TaxLocation(country), day)
    assert rule.rate == Decimal(rate)


def test_before_the_tables_begin_there_is_no_rule() -> None:
    assert TABLES.rules_for(TaxLocation("FR"), date(2019, 12, 31)) == []


def test_the_tables_digest_is_stable_and_changes_with_the_data() -> None:
    assert len(TABLES.digest) == 64
    assert TABLES.digest == builtin_tables().digest


def minimal(**rule_overrides: Any) -> dict[str, Any]:
    rule = {
        "rule_id": "XX-1",
        "jurisdiction": "XX",
        "country": "XX",
        "regions": None,
        "tax_type": "vat",
        "rate": "0.10",
        "effective_from": "2020-01-01",
        "effective_to": None,
        "registration": "XX",
        "taxability": {"saas": "1", "services": "1"},
    }
    rule.update(rule_overrides)
    return {"regime": "gb_vat", "rules": [rule]}


CODES = {"codes": {"saas": "", "services": "", "exempt": ""}}


def test_a_minimal_table_loads() -> None:
    tables = TaxTables.from_documents({"x.json": minimal()}, CODES)
    assert [rule.rule_id for rule in tables.rules] == ["XX-1"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"rate": 0.1},  # a float has already lost the rate
        {"rate": "1.5"},
        {"taxability": {"saas": "1"}},  # services not stated
        {"taxability": {"saas": "1", "services": "1", "hardware": "1"}},
        {"taxability": {"saas": "2", "services": "1"}},
        {"effective_to": "2019-01-01"},
        {"effective_from": "01/01/2020"},
        {"country": "xx"},
        {"surprise": True},
    ],
)
def test_malformed_rules_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidTaxTable):
        TaxTables.from_documents({"x.json": minimal(**overrides)}, CODES)


def test_two_rows_in_force_on_the_same_day_are_refused() -> None:
    document = minimal(effective_to="2021-01-01")
    second = copy.deepcopy(document["rules"][0])
    second.update(rule_id="XX-2", effective_from="2020-12-31", effective_to=None)
    document["rules"].append(second)
    with pytest.raises(InvalidTaxTable, match="both in force"):
        TaxTables.from_documents({"x.json": document}, CODES)
    second["effective_from"] = "2021-01-01"  # half-open: back to back is fine
    assert len(TaxTables.from_documents({"x.json": document}, CODES).rules) == 2


@pytest.mark.parametrize(
    ("tax_id", "country", "reason"),
    [
        ("DE123456789", "DE", "format_ok"),
        ("de 123.456.789", "DE", "format_ok"),
        ("ATU12345678", "AT", "format_ok"),
        ("EL123456789", "GR", "format_ok"),
        ("NL123456789B01", "NL", "format_ok"),
        ("FRXX123456789", "FR", "format_ok"),
        ("IE1234567T", "IE", "format_ok"),
        ("GB123456789", "GB", "format_ok"),
        ("51 824 753 556", "AU", "format_ok"),
        ("DE12345678", "DE", "bad_format"),
        ("GR123456789", "GR", "bad_format"),
        ("DE123456789", "FR", "country_mismatch"),
        ("FR40303265045", "DE", "country_mismatch"),
        ("51824753557", "AU", "bad_check_digits"),
        (None, "DE", "absent"),
        ("123", "US", "no_format_for_country"),
    ],
)
def test_tax_id_formats(tax_id: str | None, country: str, reason: str) -> None:
    check = check_tax_id(tax_id, country, TABLES)
    assert (check.valid, check.reason) == (reason == "format_ok", reason)


def test_the_abn_check_digits() -> None:
    assert abn_checksum_ok("51824753556")  # the ATO's published example
    assert not abn_checksum_ok("51824753555")
    assert not abn_checksum_ok("5182475355")
