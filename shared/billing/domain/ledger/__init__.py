"""Ledger: the pure rules of the double-entry journal (storage lives in adapters).

accounts (account kinds, their normal balances, directions), transactions (postings, journal
transactions that refuse to exist unbalanced, deterministic ids, reversals), builders (the transactions
for a finalized invoice, a payment, a credit application), chain (hash-chained journal entries, the
verifier, balances derived from entries), errors. No I/O, no clock reads (times are passed in), no float.
"""
