"""Errors of the tax domain: requests and tables that cannot be used, and tax that cannot be had now.

Each carries a stable machine `code`; never match on the message text.
"""

from __future__ import annotations

from billing.domain.errors import BillingError, TransientFailure


class TaxError(BillingError):
    """A tax request or location cannot be taxed as it is (fix the data; retrying will not help).

    Codes: invalid_tax_request, unknown_tax_code, missing_region, no_location, invalid_location.
    """

    code = "tax_error"


class InvalidTaxTable(TaxError):
    """A jurisdiction table is malformed or contradicts itself (overlapping effective dates)."""

    code = "invalid_tax_table"


class TaxProviderFailed(TransientFailure):
    """An external tax provider timed out, refused or answered nonsense (adapters raise this).

    The circuit breaker counts it; the last-known-good fallback answers instead.
    """

    code = "tax_provider_failed"


class TaxUnavailable(TransientFailure):
    """No tax can be computed now: the provider is failing and no last-known-good rate is known.

    The close of this customer must be retried later rather than invent a rate.
    """

    code = "tax_unavailable"
