"""Does a customer's tax id look valid for its country? (VAT numbers, GB VAT numbers, ABNs.)

Format only (prefix and pattern from the tables, plus the ABN modulus-89 check): this decides whether a
B2B reverse charge may apply. It is not a registry lookup (VIES, HMRC, ABN Lookup); an adapter should
confirm a number there before the first invoice and store the result on the customer.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.domain.tax.tables import TaxTables

_SEPARATORS = str.maketrans("", "", " .-/")
_ABN_WEIGHTS = (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)


@dataclass(frozen=True)
class TaxIdCheck:
    """`valid` for the country, and why not when not (absent, unknown_format, country_mismatch, ...)."""

    valid: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"valid": self.valid, "reason": self.reason}


def normalize_tax_id(tax_id: str) -> str:
    """Upper case without spaces, dots, hyphens or slashes: "de 123.456.789" -> "DE123456789"."""
    return tax_id.upper().translate(_SEPARATORS)


def check_tax_id(tax_id: str | None, country: str, tables: TaxTables) -> TaxIdCheck:
    if not tax_id:
        return TaxIdCheck(False, "absent")
    number = normalize_tax_id(tax_id)
    expected = tables.tax_ids.get(country)
    if expected is None:
        return TaxIdCheck(False, "no_format_for_country")
    if number.startswith(expected.prefix) and expected.pattern.fullmatch(number[len(expected.prefix) :]):
        if expected.checksum == "abn" and not abn_checksum_ok(number):
            return TaxIdCheck(False, "bad_check_digits")
        return TaxIdCheck(True, "format_ok")
    for other in tables.tax_ids.values():
        if (
            other.country != country
            and other.prefix
            and number.startswith(other.prefix)
            and other.pattern.fullmatch(number[len(other.prefix) :])
        ):
            # A real number of another country does not make this customer a business *here*.
            return TaxIdCheck(False, "country_mismatch")
    return TaxIdCheck(False, "bad_format")


def abn_checksum_ok(abn: str) -> bool:
    """The ATO check: subtract 1 from the first digit, weight the 11 digits, the sum divides by 89."""
    if len(abn) != len(_ABN_WEIGHTS) or not abn.isdigit():
        return False
    digits = [int(char) for char in abn]
    digits[0] -= 1
    return sum(d * w for d, w in zip(digits, _ABN_WEIGHTS, strict=True)) % 89 == 0
