"""Tax: the tax engine port and the pure parts of computing tax (adapters call providers).

model (requests, quotes, tax lines, the `TaxEngine` protocol), tables (jurisdiction rules with effective
dates, loaded from the JSON in `data/`), tax_ids (does a VAT number / ABN look valid), rules_engine (the
built-in engine), locations (a line split across a mid-period change of tax location), resilience (the
circuit breaker and the last-known-good fallback for external providers), reconciliation (estimated
against actual tax), errors. No I/O beyond reading the package's own data, no clock reads, no float.
"""
