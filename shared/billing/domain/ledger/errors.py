"""Errors of the ledger domain: a journal transaction or entry that must not exist.

Each carries a stable machine `code`; never match on the message text.
"""

from __future__ import annotations

from billing.domain.errors import BillingError


class LedgerError(BillingError):
    """A ledger rule was broken by the caller's input (a programming or data error, never retried).

    Codes: unbalanced_transaction, invalid_posting, invalid_transaction, invalid_entry, mixed_currencies,
    invalid_amount, nothing_to_book.
    """

    code = "ledger_error"


class UnbalancedTransaction(LedgerError):
    """Debits and credits of a journal transaction differ in some currency: it is refused."""

    code = "unbalanced_transaction"
