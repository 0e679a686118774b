"""Tollgate billing service: prepaid credit ledger, balances and top-ups."""
