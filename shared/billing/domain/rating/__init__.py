"""Rating: pure functions that turn a customer's stored usage events into correct money.

money (currencies, minor units, the one rounding rule), meters (aggregation of events), pricing (charge
models), periods (billing periods in the customer's timezone), proration (by seconds), plans
(plans, versions, subscription segments), invoices (lines, totals, deterministic ids, late-event
adjustments). Nothing here does I/O or reads a clock.
"""
