"""Rating: pure functions that turn a customer's stored usage events into correct money.

money (currencies, minor units, the one rounding rule), meters (aggregation of events), pricing (charge
models), periods (billing periods in the customer's timezone), proration (by seconds), customers (currency
and billing cycle), plans (plan versions, subscription segments), invoices (lines, totals, deterministic
ids, late-event adjustments), errors. Nothing here does I/O (beyond reading the tz database) or reads a
clock, and no float is ever used.
"""
