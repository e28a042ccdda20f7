"""Accounts of the journal: one per (customer, currency, kind), the kinds and their normal balances.

Normal balance (the side on which the account grows, and the sign its balance is reported with):
- receivable: debit. An asset: what the customer owes us for finalized invoices.
- cash: debit. An asset: money received (a clearing account per customer; settlement to the bank
  account is outside this ledger).
- revenue: credit. Income earned from the invoice lines (net of tax).
- tax_payable: credit. A liability: tax collected on behalf of a tax authority.
- customer_credit: credit. A liability: what we owe the customer (credit notes, overpayments), to be
  applied to later invoices or refunded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from billing.domain.ledger.errors import LedgerError
from billing.domain.rating.money import Currency


class Direction(StrEnum):
    DEBIT = "debit"
    CREDIT = "credit"

    @property
    def opposite(self) -> Direction:
        return Direction.CREDIT if self is Direction.DEBIT else Direction.DEBIT


class AccountKind(StrEnum):
    RECEIVABLE = "receivable"
    REVENUE = "revenue"
    TAX_PAYABLE = "tax_payable"
    CASH = "cash"
    CUSTOMER_CREDIT = "customer_credit"

    @property
    def normal_balance(self) -> Direction:
        return NORMAL_BALANCE[self]


NORMAL_BALANCE: dict[AccountKind, Direction] = {
    AccountKind.RECEIVABLE: Direction.DEBIT,
    AccountKind.CASH: Direction.DEBIT,
    AccountKind.REVENUE: Direction.CREDIT,
    AccountKind.TAX_PAYABLE: Direction.CREDIT,
    AccountKind.CUSTOMER_CREDIT: Direction.CREDIT,
}


@dataclass(frozen=True)
class Account:
    """An account of one customer in one currency; a ledger never mixes currencies in an account."""

    customer_id: str
    currency: Currency
    kind: AccountKind

    def __post_init__(self) -> None:
        if (
            not isinstance(self.customer_id, str)
            or not self.customer_id
            or self.customer_id.strip() != (self.customer_id)
        ):
            raise LedgerError("an account needs a customer id", code="invalid_posting")
        if not isinstance(self.currency, Currency):
            object.__setattr__(self, "currency", Currency.of(self.currency))
        object.__setattr__(self, "kind", AccountKind(self.kind))

    @property
    def name(self) -> str:
        """A stable text name, e.g. "cus_42/USD/receivable" (used in messages and storage keys)."""
        return f"{self.customer_id}/{self.currency.code}/{self.kind.value}"


def signed_effect(kind: AccountKind, direction: Direction, amount_minor: int) -> int:
    """How a posting moves the account's balance as reported (positive on its normal side)."""
    return amount_minor if direction is kind.normal_balance else -amount_minor
