"""Estimated tax against actual tax: the adjustments the next close bills.

Per (source line, jurisdiction): actual minus estimated, in minor units; only differences that are not
zero. Lines are grouped by their source line (`locations.source_ref`), so the same function corrects a
period whose tax location changed after it was finalized (billed lines against the lines of the split).
A positive difference is tax the customer still owes, a negative one tax to credit back; both are carried
as `tax` lines on the next invoice and booked with it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from billing.domain.rating.money import Currency, format_major
from billing.domain.tax.locations import source_ref
from billing.domain.tax.model import TaxLine


@dataclass(frozen=True)
class TaxAdjustment:
    line_ref: str
    jurisdiction: str
    estimated_minor: int
    actual_minor: int

    @property
    def difference_minor(self) -> int:
        return self.actual_minor - self.estimated_minor

    def to_json(self, currency: Currency) -> dict[str, Any]:
        """A `tax` invoice line for the next invoice."""
        return {
            "type": "tax",
            "adjusts": "tax",
            "line_ref": self.line_ref,
            "jurisdiction": self.jurisdiction,
            "amount": format_major(self.difference_minor, currency),
            "amount_minor": self.difference_minor,
            "tax_estimated": False,
            "description": (
                f"Tax adjustment {self.jurisdiction} for {self.line_ref}: "
                f"actual {format_major(self.actual_minor, currency)}, "
                f"billed {format_major(self.estimated_minor, currency)}"
            ),
        }


def reconcile_estimated(
    estimated_lines: Iterable[TaxLine], actual_lines: Iterable[TaxLine]
) -> list[TaxAdjustment]:
    """Adjustments that bring what was billed (estimated) to what is due (actual)."""
    billed: dict[tuple[str, str], int] = defaultdict(int)
    due: dict[tuple[str, str], int] = defaultdict(int)
    for line in estimated_lines:
        billed[(source_ref(line.line_ref), line.jurisdiction)] += line.tax_minor
    for line in actual_lines:
        due[(source_ref(line.line_ref), line.jurisdiction)] += line.tax_minor
    adjustments = [
        TaxAdjustment(ref, jurisdiction, billed.get((ref, jurisdiction), 0), due.get((ref, jurisdiction), 0))
        for ref, jurisdiction in sorted(set(billed) | set(due))
    ]
    return [adjustment for adjustment in adjustments if adjustment.difference_minor]


def adjustment_total(adjustments: Iterable[TaxAdjustment]) -> int:
    return sum(adjustment.difference_minor for adjustment in adjustments)
